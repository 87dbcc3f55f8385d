"""One module per subcommand. Each defines:

    HELP: str                                   one line for `facmon --help`
    def add_arguments(parser) -> None           its own options
    def run(args, config: FacmonConfig) -> int  the exit status

`facmon.cli` lists them in COMMANDS; a module added here and listed there is a new subcommand.
"""
