"""Patient cohorts: a definition format, one compiler to Ibis, counts with disclosure control."""
