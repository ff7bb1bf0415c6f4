"""The ``fer-audio`` command. Exit codes: 0 normal, 2 bad input, 1 anything unexpected.

Output is plain lines a screen reader reads well: no colour, no banners, no
progress bars. Every user error is one line naming what and where.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fer_audio.config import Config, ConfigError, load_config
from fer_audio.errors import FerAudioError

if TYPE_CHECKING:
    from fer_audio.types import Event

log = logging.getLogger("fer_audio")

EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT = 0, 1, 2


class UserError(FerAudioError):
    """Bad input from the user: printed as one line, exit 2."""


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="fer-audio: %(levelname)s: %(message)s")
    for noisy in ("comtypes", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def side(x: float) -> str:
    """Where a face is, in words: a screen-reader user hears this, not a number."""
    if x < -0.33:
        return "left"
    if x > 0.33:
        return "right"
    return "centre"


def format_event(e: Event) -> str:
    return f"{e.t:6.2f} s  person {e.track}, {side(e.x)}: {e.what} ({e.confidence:.2f})"


def apply_overrides(cfg: Config, args: argparse.Namespace) -> Config:
    src = cfg.source.model_copy()
    audio = cfg.audio.model_copy()
    if args.source is not None:
        src.uri = args.source
    if args.realtime:
        src.realtime = True
    if args.loop:
        src.loop = True
    if args.audio_out is not None:
        audio.output = "wav"
        audio.wav_path = Path(args.audio_out)
    if args.no_audio:
        audio.output = "silent"
    return cfg.model_copy(update={"source": src, "audio": audio})


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def run_pipeline(cfg: Config, events_out: Path | None, print_timeline: bool,
                 max_seconds: float | None = None, stop: threading.Event | None = None,
                 reload_config: Callable[[], Config] | None = None, config_name: str = "") -> int:
    """Build the stages, run to the end of the source (or a signal), print what happened.

    With ``reload_config`` (how to re-read the TOML) it runs as the service
    (fer_audio.daemon): one instance per user, the control socket, SIGHUP reloads.
    """
    events: list[Any] | None
    if reload_config is not None:
        from fer_audio.daemon import Daemon

        daemon = Daemon(cfg, reload_config, config_name=config_name or "the configuration",
                        events_out=events_out, keep_events=print_timeline, max_seconds=max_seconds)
        result = daemon.run()
        stats, source_name, events = result.stats, result.source, result.events
    else:
        from fer_audio.runner import Run

        with Run(cfg, events_out=events_out, keep_events=True) as run:
            stop = stop or threading.Event()
            _install_stop_handlers(stop)
            run.announce()
            stats = run.pipe.run(stop, max_seconds=max_seconds)
        source_name = run.source_name
        events = run.kept.events if run.kept is not None else None
    if print_timeline and events is not None:
        print(f"cue timeline for {source_name}:")
        for e in events:
            print("  " + format_event(e))
        if not events:
            print("  (no events)")
    print(f"{stats.analysed} frames analysed in {stats.seconds:.1f} s ({stats.fps:.1f} frames per second), "
          f"{stats.events} events, {stats.cues_played} cues played; ended: {stats.end_reason}")
    if stats.underrun_note:
        print(stats.underrun_note)
    if events_out:
        print(f"events written to {events_out}")
    if cfg.audio.output == "wav" and cfg.audio.wav_path:
        print(f"audio written to {cfg.audio.wav_path}")
    if stats.source_error:
        # Not a normal end: a service manager should see a failure (and restart the service).
        print(f"fer-audio: error: {stats.source_error}", file=sys.stderr)
        return EXIT_CRASH
    return EXIT_OK


# -- subcommands ------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    cfg = apply_overrides(load_config(args.config), args)
    if args.events_out:
        _check_writable(Path(args.events_out))
    if cfg.audio.output == "wav" and cfg.audio.wav_path:
        _check_writable(cfg.audio.wav_path)

    def reload_config() -> Config:
        # SIGHUP re-reads the file; the command-line options keep winning over it.
        return apply_overrides(load_config(args.config), args)

    from fer_audio.config import default_config_path

    name = str(args.config) if args.config else str(default_config_path())
    return run_pipeline(cfg, Path(args.events_out) if args.events_out else None,
                        print_timeline=not args.quiet, max_seconds=args.max_seconds,
                        reload_config=reload_config, config_name=name)


def cmd_ctl(args: argparse.Namespace) -> int:
    """Talk to the running service. Exit 0: done; 1: no service answers; 2: it refused (reply printed)."""
    from fer_audio.control import ControlError, NotRunning, describe_status, send_command, socket_path

    path = socket_path()
    try:
        reply = send_command(path, args.action, timeout_s=args.timeout)
    except NotRunning as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CRASH
    except ControlError as exc:
        print(f"fer-audio: error: {exc}", file=sys.stderr)
        return EXIT_CRASH
    if not reply.startswith("ok: "):
        print(f"fer-audio: {reply}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = reply[len("ok: "):]
    if args.action == "status" and not args.json:
        import json
        from contextlib import suppress

        with suppress(ValueError, TypeError, AttributeError):
            text = describe_status(json.loads(text))
    print(text)
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace) -> int:
    from fer_audio.daemon import install_service

    config = Path(args.config) if args.config else None
    if config is not None:
        load_config(config)  # a unit pointing at a broken file would only fail at login
    try:
        install_service(config, dry_run=args.dry_run)
    except OSError as exc:
        raise UserError(f"cannot write the unit: {exc}") from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from fer_audio.resources import DEMO_CLIP

    cfg = load_config(args.config)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / "fer-audio-demo.wav"
    events = out_dir / "fer-audio-demo-events.jsonl"
    ns = argparse.Namespace(source=str(DEMO_CLIP), realtime=args.realtime, loop=False,
                            audio_out=None if args.realtime else str(wav), no_audio=False)
    cfg = apply_overrides(cfg, ns)
    print(f"demo: running {DEMO_CLIP.name} (real photographs, MIT licensed) through the whole pipeline")
    return run_pipeline(cfg, events, print_timeline=True)


def cmd_check_config(args: argparse.Namespace) -> int:
    from fer_audio.audio import check_cues
    from fer_audio.cues import CueError

    cfg = load_config(args.path)
    try:
        check_cues(cfg)
    except CueError as exc:
        raise ConfigError(f"{args.path}: {exc}") from None
    print(f"{args.path}: OK")
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    from fer_audio.sinks import list_devices

    devices = list_devices()
    if not devices:
        print("no audio output devices found")
        return EXIT_OK
    for line in devices:
        print(line)
    return EXIT_OK


def cmd_sounds(args: argparse.Namespace) -> int:
    from fer_audio.learning import play_learning

    cfg = load_config(args.config)
    return int(play_learning(cfg, list(args.keys) or None, Path(args.out) if args.out else None))


def cmd_analyze(args: argparse.Namespace) -> int:
    from fer_audio.analyze import analyze

    return analyze(load_config(args.config), [Path(p) for p in args.photos], args.json)


def _check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-audio", description="Hear the expressions of the people you talk to.")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service (camera by default)")
    run.add_argument("--config", type=Path, help="TOML file (default: $XDG_CONFIG_HOME/fer-audio/config.toml)")
    run.add_argument("--source", help="camera index, video file, image folder or stream URL")
    run.add_argument("--events-out", help="write events as JSON Lines to this file")
    run.add_argument("--audio-out", help="write the mixed audio to this WAV instead of the sound card")
    run.add_argument("--no-audio", action="store_true", help="play nothing")
    run.add_argument("--realtime", action="store_true", help="pace a file at its frame rate")
    run.add_argument("--loop", action="store_true", help="repeat a file source")
    run.add_argument("--max-seconds", type=float, default=None, help="stop after this much source time")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run the bundled clip through the whole pipeline")
    demo.add_argument("--config", type=Path)
    demo.add_argument("--out-dir", default=".", help="where the WAV and events go (default: here)")
    demo.add_argument("--realtime", action="store_true", help="play through the sound card in real time")
    demo.set_defaults(func=cmd_demo)

    chk = sub.add_parser("check-config", help="validate a TOML config and its sound files")
    chk.add_argument("path", type=Path)
    chk.set_defaults(func=cmd_check_config)

    dev = sub.add_parser("devices", help="list audio output devices")
    dev.set_defaults(func=cmd_devices)

    snd = sub.add_parser("sounds", help="play each cue followed by its name, to learn the set")
    snd.add_argument("keys", nargs="*", help="cue keys to play (default: all)")
    snd.add_argument("--config", type=Path)
    snd.add_argument("--out", help="write the sequence to this WAV instead of playing it")
    snd.set_defaults(func=cmd_sounds)

    ana = sub.add_parser("analyze", help="say what the camera would see in photos (faces, expression, facing)",
                         description="Detect faces in each photo and print, per photo, one plain line "
                                     "(or, with --json, one JSON object per face). Writes nothing, opens no socket.")
    ana.add_argument("photos", nargs="+", help="image files (JPEG, PNG, ...)")
    ana.add_argument("--config", type=Path)
    ana.add_argument("--json", action="store_true", help="one JSON line per face: image, box, expression, "
                                                         "probabilities, yaw, facing")
    ana.set_defaults(func=cmd_analyze)

    ctl = sub.add_parser(
        "ctl", help="control the running service: pause, resume, status, describe, reload, stop",
        description="Send one command to the running service over its user-only socket "
                    "($XDG_RUNTIME_DIR/fer-audio/control.sock). Exit status: 0 done; "
                    "1 the service is not running or does not answer; 2 it refused the command.")
    ctl.add_argument("action", choices=("pause", "resume", "status", "describe", "reload", "stop"))
    ctl.add_argument("--json", action="store_true", help="status: print the raw JSON object")
    ctl.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply (default 10)")
    ctl.set_defaults(func=cmd_ctl)

    svc = sub.add_parser("install-service", help="install the systemd user unit for this installation")
    svc.add_argument("--config", type=Path, help="TOML file the service should use (default: the usual one)")
    svc.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
    svc.set_defaults(func=cmd_install_service)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and hasattr(signal, "SIGHUP"):
        # Until the service installs its reload handler (~1 s of imports and model
        # loading), a SIGHUP must not kill it: that is the signal's default action.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except FerAudioError as exc:  # every stage's one-line error
        print(f"fer-audio: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
