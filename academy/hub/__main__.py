"""``python -m academy.hub`` (``make hub``): prepare the course's hub, then run JupyterHub.

python -m academy.hub --roster hub/roster.csv           # as root; 127.0.0.1:8000
python -m academy.hub --remove --roster hub/roster.csv  # remove the roster's accounts
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from academy.hub.deploy import CHECKOUT, DEFAULT_STATE, HubSettings, prepare

CONFIG = Path(__file__).with_name("jupyterhub_config.py")


def hub_command(settings: HubSettings) -> tuple[list[str], dict[str, str]]:
    """The ``jupyterhub`` command line and environment for prepared ``settings``."""
    env = dict(os.environ)
    env["F0_HUB_SETTINGS"] = str(settings.settings_file)
    here = Path(sys.executable).parent  # the hub runs here; servers run from settings.runtime
    env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(here / "jupyterhub"), "-f", str(CONFIG)]
    return cmd, env


def remove(settings: HubSettings) -> None:
    import grp

    from academy.hub.accounts import remove_account, remove_group, unrestrict_checkout
    from academy.hub.roster import load_roster

    try:
        gid = grp.getgrnam(settings.learners_group).gr_gid
        unrestrict_checkout(Path(settings.checkout), gid)
    except KeyError:
        pass
    for person in load_roster(Path(settings.roster), prefix="f0-"):
        remove_account(person.username)
    remove_group(settings.learners_group)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m academy.hub", description=__doc__.split("\n")[0])
    p.add_argument("--roster", default=str(CHECKOUT / "hub" / "roster.csv"))
    p.add_argument("--state", default=os.environ.get("F0_HUB_STATE", str(DEFAULT_STATE)))
    p.add_argument("--exchange", default="", help="nbgrader exchange (default: STATE/exchange)")
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--learners-group", default="f0-learners")
    p.add_argument(
        "--password",
        default=os.environ.get("F0_HUB_PASSWORD", ""),
        help="the trial login's shared password (default: a random one, printed)",
    )
    p.add_argument(
        "--late-penalty",
        choices=("none", "zero"),
        default=os.environ.get("F0_HUB_LATE_PENALTY", "none"),
        help="work submitted after the due date: flagged only (none, default) or scored 0",
    )
    p.add_argument("--prepare-only", action="store_true", help="set up, do not start the hub")
    p.add_argument("--remove", action="store_true", help="remove the roster's local accounts")
    args = p.parse_args(argv)

    settings = HubSettings(
        state=str(Path(args.state).resolve()),
        roster=str(Path(args.roster).resolve()),
        exchange=args.exchange,
        ip=args.ip,
        port=args.port,
        learners_group=args.learners_group,
        password=args.password,
        late_penalty=args.late_penalty,
    )
    if args.remove:
        remove(settings)
        return 0
    if settings.settings_file.exists():  # keep ports and password across restarts
        old = HubSettings.load(settings.settings_file)
        settings.password = settings.password or old.password
    prepare(settings)
    if not Path(settings.proxy).exists():
        print(f"{settings.proxy} is missing: run `make hub-proxy`", file=sys.stderr)
        return 2
    if args.prepare_only:
        return 0
    print(
        f"Framework0 Academy hub on http://{settings.ip}:{settings.port}/ "
        f"(trial login: any roster user name, password {settings.password})",
        file=sys.stderr,
        flush=True,
    )
    cmd, env = hub_command(settings)
    os.chdir(settings.secret_dir)
    os.execve(cmd[0], cmd, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
