"""A merchant's settings (SPEC §4 settings): gateway connections and routing today; dunning and invoice numbering
join them as their features arrive."""
