from sparkdeck_cli.main import cli

cli(prog_name="sparkdeck")
