"""``elrt calibrate``: the λ of each regularized run of a profile by the calibration rule."""

from __future__ import annotations

import argparse

from .common import add_profile_arg

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt calibrate``."""
    p = sub.add_parser("calibrate", help="lambda of each regularized run of a profile by the calibration rule")
    add_profile_arg(p)
    p.add_argument("--write", action="store_true", help="store missing or differing values in reg_weights.yaml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the rule's λ beside the stored one for each setting; 1 where one is missing or differs (unless ``--write``)."""
    from .. import calibration, profiles

    settings = profiles.load(args.profile, check_lambdas=False).reg_settings()
    stored, new = calibration.table(), {}
    for setting in sorted(settings, key=lambda x: x.keys):
        lam, p = calibration.calibrate(setting)
        net, key = setting.keys
        have = stored.get(net, {}).get(key)
        print(f"{net} {key}: penalty at init {p:.4g}, rule lambda {lam:g}, stored {have if have is not None else '-'}")
        if have != lam:
            new.setdefault(net, {})[key] = lam
    if new and args.write:
        calibration.write(new)
        print(f"wrote {sum(map(len, new.values()))} value(s) to {calibration.WEIGHTS_FILE}")
    elif new:
        print("some stored values are missing or differ from the rule: rerun with --write to store the rule's values")
        return 1
    return 0
