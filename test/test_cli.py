import subprocess
import sys

from matseg_ros import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "matseg_ros.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_installed_subcommands_only():
    result = run("--help")
    assert result.returncode == 0
    available = cli.available_commands()
    for name, (_, help_text) in cli.COMMANDS.items():
        assert (help_text in " ".join(result.stdout.split())) == (name in available), name


def test_unknown_subcommand_is_a_usage_error():
    result = run("frobnicate")
    assert result.returncode == 2 and "invalid choice: 'frobnicate'" in result.stderr
