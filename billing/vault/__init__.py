"""The card vault: card numbers encrypted at rest (AES-256-GCM, envelope encryption), keyed fingerprints, key
rotation, and the log filter that masks any card number that slips into a log line."""
