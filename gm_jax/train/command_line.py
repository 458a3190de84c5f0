"""The command line of the launcher and the experiment scripts: flags parsed, and bad input or a failed
run reported as one line on stderr (`error: ...`) that says what to change, never a traceback."""

from __future__ import annotations

import os
import re
import sys
import traceback
from typing import Any, Callable

from absl import app, flags, logging

from gm_jax.train import log_filters, termination

# What a run raises for bad input or a failed run: reported as one line.
REPORTED_ERRORS = (ValueError, OSError, RuntimeError, FloatingPointError)


def fail(message: str) -> None:
  """Ends the process with one line on stderr (bad input or a failed run)."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  # Exit at once so that late callbacks of background I/O threads cannot print after the message.
  os._exit(1)


def _bad_config_field(argv: list[str], error: Exception, file: str | None = None) -> str:
  """One line for an override of a field the locked config does not have (ml_collections raises
  AttributeError/KeyError with a multi-line 'Did you mean' text), or for a field the config's loading
  code read (e.g. a family's :tiny size) when no override names it."""
  text = str(error).encode().decode("unicode_escape")
  keys = re.findall(r"'(\w+)'", text)
  suggestion = re.search(r'Did you mean "(\w+)"', text)
  hint = f" (did you mean {suggestion.group(1)!r}?)" if suggestion else ""
  overrides = [a.split("=", 1)[0] for a in argv if a.startswith("--config.")]
  flag = next((o for o in overrides if keys and keys[0] in o[len("--config."):].split(".")), None)
  reason = text.splitlines()[0] if text else type(error).__name__
  if flag is None and file is not None and keys:
    return (f"config file {file!r} fails to load: the config it builds has no field {keys[0]!r} (if it "
            f"sets config.task, start from that family's default config)")
  if flag is None:
    return f"bad --config override: {reason}"
  parent = flag[len("--config."):].rsplit(".", 1)[0]
  if parent == "data.geometry":  # {} in most configs: the distribution's own defaults
    return (f"{flag}: data.geometry holds only what the config sets; give the whole mapping, e.g. "
            f"--config.data.geometry=\"{{'{keys[0]}': VALUE}}\" (the distribution's fields: "
            f"gm_jax/data/toy2d.py)")
  return f"{flag}: the config has no field {keys[0]!r}{hint}; see the config file for its fields"


def define_config_with_default(default: str, help_text: str) -> None:
  """The locked --config flag with a default file. ml_collections loads that file and applies the command
  line's --config.FIELD overrides as the flag is defined, at the script's import, so a bad override is
  reported here, in one line, instead of as a traceback."""
  from ml_collections import config_flags

  try:
    config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
  except (AttributeError, KeyError) as e:
    fail(_bad_config_field(sys.argv, e))


def _config_file(argv: list[str]) -> str | None:
  """The file of --config=FILE[:ARG], if given."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":", 1)[0]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":", 1)[0]
  return None


def _line_in(error: BaseException, file: str | None) -> int | None:
  """The line of `file` where `error` was raised (a syntax error's own line), or None if not there."""
  if file is None or not os.path.isfile(file):
    return None
  same = lambda path: bool(path) and os.path.isfile(path) and os.path.samefile(path, file)
  if isinstance(error, SyntaxError) and same(error.filename):
    return error.lineno
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if same(frame.filename)]
  return lines[-1] if lines else None


def _check_config_is_a_config_dict() -> None:
  """Refuses a config that get_config returned as a plain dict or None (a dict loaded, and the run failed
  at the first field it read)."""
  from ml_collections import ConfigDict, config_flags

  if "config" not in flags.FLAGS:
    return
  value = flags.FLAGS["config"].value
  if not isinstance(value, ConfigDict) and type(value).__module__ == "builtins":  # not an unread-file error
    file = config_flags.get_config_filename(flags.FLAGS["config"])
    returned = "None" if value is None else f"a {type(value).__name__}"
    fail(f"config file {file!r}: get_config() returned {returned}, not an ml_collections.ConfigDict; "
         f"return ml_collections.ConfigDict(...) from it")


def _loading_error(error: BaseException, file: str | None) -> tuple[BaseException, int] | None:
  """The exception the config file's own code raised, and its line there: `error` or one it was raised
  from (ml_collections re-raises a TypeError or ValueError of get_config as a flags error)."""
  while error is not None:
    line = _line_in(error, file)
    if line is not None:
      return error, line
    error = error.__cause__ or error.__context__
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file, flag or config override reported as one line."""
  file = _config_file(argv)
  if file is not None and not os.path.isfile(file):
    fail(f"config file {file!r} does not exist; pass --config=experiments/configs/NAME.py[:tiny]")
  try:
    # ml_collections warns of a get_config that returned None; the error below says it in its one line.
    with log_filters.absl_records_dropped(lambda message: "returned None" in message):
      rest = flags.FLAGS(argv)
  except Exception as e:  # a flag, the config file's own code, or an override of a field the config lacks
    loading = _loading_error(e, file)
    if loading is not None:
      error, line = loading
      reason = str(error.msg if isinstance(error, SyntaxError) else error).strip().splitlines()
      fail(f"config file {file!r} fails to load, line {line}: {type(error).__name__}"
           f"{': ' + reason[0] if reason else ''}")
    if isinstance(e, flags.Error):
      lines = [line for line in str(e).splitlines() if line.strip()]
      if "other than None" in lines[0] and file is not None:
        _check_config_is_a_config_dict()
      # A config file that fails to load puts its own exception on the last line.
      fail(re.sub(r"^\w+Error: ", "", lines[-1].strip()) if "parsing config file" in lines[0] else lines[0])
    if not isinstance(e, (AttributeError, KeyError)):
      raise
    if "get_config" in str(e):
      fail(f"config file {file!r} defines no get_config(); a config file returns its ConfigDict from it")
    fail(_bad_config_field(argv, e, file))
  if len(rest) > 1:
    fail(f"unexpected arguments {rest[1:]}: every setting is a flag (--config.FIELD=VALUE, --workdir=...)")
  _check_config_is_a_config_dict()
  return rest


def one_line(e: BaseException) -> str:
  """The message of a reported error on one line; an OS error as its reason and file (and a full disk's
  remedy)."""
  if isinstance(e, OSError) and e.strerror and not isinstance(e, FileNotFoundError):
    where = f": {e.filename}" if e.filename else ""
    hint = "; free some space and rerun the same command to resume" if e.errno == 28 else ""
    return f"{e.strerror}{where}{hint}"
  # Runtime errors from XLA carry whole reports (a callback's traceback, the failed program's text): their
  # first line says what failed and the last one, when it differs, the underlying error.
  lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
  return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


def run(main: Callable[[list[str]], Any]) -> None:
  """absl's app.run for a script: its flags parsed by `parse_flags`, and the errors it raises for bad
  input or a failed run reported as one line."""

  def reported(argv):
    termination.install()
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # checkpointing libraries log every file at INFO
    try:
      return main(argv)
    except REPORTED_ERRORS as e:
      fail(one_line(e))

  app.run(reported, flags_parser=parse_flags)
