"""Studies: algorithms x envs x seeds, each (algo, env) cell one compiled call of all its
seeds written as an ordinary run dir, with a report (`vecpg study`, README "Studies").

    import vecpg
    spec = vecpg.studies.StudySpec(algos=("ppo", "trpo"), envs=("gymnax/CartPole-v1",), seeds=8,
                                 settings={"total_steps": 100_000})
    vecpg.studies.run_study(spec, "runs/study")   # writes runs/study/report/ at the end
"""

from vecpg.studies.command import StudyCommand, run_study_cmd
from vecpg.studies.power import seeds_needed
from vecpg.studies.presets import playground_ppo, preset_settings
from vecpg.studies.report import write_report
from vecpg.studies.runner import load_study, parse_shard, run_study
from vecpg.studies.spec import Cell, Study, StudySpec, show_config, spec_from_dict, spec_from_toml

__all__ = [
    "Cell",
    "Study",
    "StudyCommand",
    "StudySpec",
    "load_study",
    "parse_shard",
    "playground_ppo",
    "preset_settings",
    "run_study",
    "run_study_cmd",
    "seeds_needed",
    "show_config",
    "spec_from_dict",
    "spec_from_toml",
    "write_report",
]
