"""Write-side stores, one per kind of state; each wraps the unit of work's connection."""
