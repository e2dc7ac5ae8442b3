"""The timeline stage: a customer's history built from the store (emails, calls, incidents,
pauses merged in time order), and what is computed from it (calls, opening hours,
completeness, the summary's figures, the company's reachability)."""
