"""Study-level analyses (scaling-law fits, tables) that also run outside the DAG."""
