#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cfscrub::cli::main()
}
