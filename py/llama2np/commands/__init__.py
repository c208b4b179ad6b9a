"""One module per `llama2np` sub-command: `register(subparsers)` adds its flags, `run(args)`
calls a function of its concern and returns the exit status. Heavy tool-chain modules are
imported inside `run`, so one command's missing package never breaks another."""
