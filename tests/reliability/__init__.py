"""The standing reliability suite (issue 28): outages, forged records, kills."""
