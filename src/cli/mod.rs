//! The operator command line: subcommands that call the operator API and print the answers.
