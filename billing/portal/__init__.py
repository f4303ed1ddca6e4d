"""The hosted customer portal: sessions made over the API or for an email link, and the pages they open."""
