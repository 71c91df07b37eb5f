use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_headless_vulkan();
    match bnas::cli::run(bnas::cli::Cli::parse_noting_given()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bnas::cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Mesa's device-select Vulkan layer (implicit: every Vulkan adapter list passes through it)
/// opens a Wayland connection to rank the adapters, and on a machine with no session (CI, a
/// server over ssh) libwayland then prints "error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment." twice: an error line that is none, above every command that looks for a
/// GPU. bnas ranks the adapters itself (`bnas::select`), so where no session is set up the layer
/// is switched off through its manifest's own switch, `NODEVICE_SELECT=1`. Set here, before
/// any thread starts; a value the user set is kept.
fn quiet_headless_vulkan() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}
