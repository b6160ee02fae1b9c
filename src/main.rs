fn main() -> std::process::ExitCode {
    cfscrub::cli::main()
}
