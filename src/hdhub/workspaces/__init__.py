"""Project workspaces: extraction of an approved perimeter, the researcher's client, the airlock."""
