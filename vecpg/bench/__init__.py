"""`vecpg bench`: plan (the CLI flags), runner (the sections in order), throughput (what
is timed), peers (Brax PPO, rejax), report (tables and files), timing (one timer, one
machine description)."""
