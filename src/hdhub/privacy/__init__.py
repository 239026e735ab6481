"""Privacy: the encrypted identity store and per-project pseudonyms and date shifts
(de-identification of notes and images comes with project provisioning)."""
