"""Research governance: project requests, committee review, perimeters, the public register."""
