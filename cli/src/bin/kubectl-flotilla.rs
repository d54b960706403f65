//! `kubectl flotilla …`: kubectl finds this binary on the PATH and runs it as a plugin.
fn main() -> std::process::ExitCode {
    flotilla_cli::main()
}
