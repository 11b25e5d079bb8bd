"""What `vecpg envs` lists, without building every env (brax and Playground take seconds
each): the specs of every registered env, recorded in `specs.json` next to this file.

Regenerate after adding an env or upgrading an env package:
    python -m vecpg.envs.catalog
`tests/test_envs.py` checks the recorded specs against freshly built envs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from vecpg.envs.protocol import EnvSpec

SPECS_FILE = Path(__file__).with_name("specs.json")


@functools.cache
def recorded_specs() -> dict[str, EnvSpec]:
    """{env name: spec} as recorded (empty if the file is missing)."""
    if not SPECS_FILE.exists():
        return {}
    return {name: EnvSpec.from_json(d) for name, d in json.loads(SPECS_FILE.read_text()).items()}


def build_specs() -> dict[str, dict]:
    """Build every registered env that can be built here and return its spec as JSON."""
    from vecpg.envs.registry import PLAYGROUND_ROBOTS, env_names, make_env

    out = {}
    for name in env_names():
        if name.removeprefix("playground/") in PLAYGROUND_ROBOTS:
            continue  # needs the Menagerie assets
        try:
            out[name] = make_env(name).spec.to_json()
        except Exception as e:  # listed as unavailable by `vecpg envs`
            print(f"skipped {name}: {type(e).__name__}")
    return out


if __name__ == "__main__":
    specs = build_specs()
    SPECS_FILE.write_text(json.dumps(specs, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(specs)} specs to {SPECS_FILE}")
