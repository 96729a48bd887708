//! The node as a Windows service (issue 14): registered by `tongban-node service install` (or the
//! installer, which calls it) to start at boot and to be restarted after a crash; the service
//! manager then starts `tongban-node service run …`, which serves like `serve` until the manager
//! says stop and logs to daily files under the data directory. Elsewhere these commands say that a
//! service is a Windows thing (Linux uses the systemd unit in deploy/README.md).

use std::net::SocketAddr;
use std::path::Path;

use tokio_util::sync::CancellationToken;

/// The service's name in the service manager (`sc query TongbanNode`).
pub const SERVICE_NAME: &str = "TongbanNode";

/// Registers and starts the service serving `data` on `http` (and a township's relay on `quic`).
pub fn install(data: &Path, http: SocketAddr, quic: Option<SocketAddr>) -> anyhow::Result<()> {
    imp::install(data, http, quic)
}

/// Stops the service (waiting for it) and removes it.
pub fn uninstall() -> anyhow::Result<()> {
    imp::uninstall()
}

/// Runs `serve` as the service: `serve` gets a token the manager's stop cancels.
pub fn run(
    serve: impl FnOnce(CancellationToken) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    imp::run(Box::new(serve))
}

type Serve = Box<dyn FnOnce(CancellationToken) -> anyhow::Result<()> + Send>;

#[cfg(not(windows))]
mod imp {
    use super::*;

    fn not_here() -> anyhow::Error {
        anyhow::anyhow!(
            "Windows services exist only on Windows; on Linux run `tongban-node serve` under systemd (deploy/README.md)"
        )
    }

    pub fn install(_: &Path, _: SocketAddr, _: Option<SocketAddr>) -> anyhow::Result<()> {
        Err(not_here())
    }

    pub fn uninstall() -> anyhow::Result<()> {
        Err(not_here())
    }

    pub fn run(_: Serve) -> anyhow::Result<()> {
        Err(not_here())
    }
}

#[cfg(windows)]
mod imp {
    use std::ffi::OsString;
    use std::sync::Mutex;
    use std::time::Duration;

    use anyhow::Context;
    use windows_service::service::{
        ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
        ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use super::*;

    /// `ERROR_SERVICE_EXISTS`, `ERROR_SERVICE_ALREADY_RUNNING`.
    const SERVICE_EXISTS: i32 = 1073;
    const ALREADY_RUNNING: i32 = 1056;

    /// After a crash: restarted after 5 s, again after 5 s, then after a minute; the count of
    /// failures starts again after a day without one.
    fn restart_after_failures() -> ServiceFailureActions {
        let restart = |secs| ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: Duration::from_secs(secs),
        };
        ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(5), restart(60)]),
        }
    }

    pub fn install(data: &Path, http: SocketAddr, quic: Option<SocketAddr>) -> anyhow::Result<()> {
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .context("opening the service manager (run as administrator)")?;
        let data = std::path::absolute(data)?;
        let mut arguments: Vec<OsString> = vec![
            "service".into(),
            "run".into(),
            "--data".into(),
            data.clone().into(),
            "--http".into(),
            http.to_string().into(),
        ];
        if let Some(quic) = quic {
            arguments.extend(["--quic".into(), quic.to_string().into()]);
        }
        let info = ServiceInfo {
            name: SERVICE_NAME.into(),
            display_name: "通办 村镇代办站点 (Tongban node)".into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: std::env::current_exe()?,
            launch_arguments: arguments,
            dependencies: vec![],
            // LocalSystem: the data directory's access list (set by the installer) admits it and
            // administrators only.
            account_name: None,
            account_password: None,
        };
        let access =
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS;
        let service = match manager.create_service(&info, access) {
            Ok(service) => service,
            // Registered already (an install cut short, an upgrade): the same entry, updated.
            Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(SERVICE_EXISTS) => {
                let service = manager.open_service(SERVICE_NAME, access)?;
                service.change_config(&info)?;
                service
            }
            Err(e) => return Err(e).context("registering the service"),
        };
        // The description and the restart-after-failure settings are the service's second
        // configuration; a service manager without one of them (Wine's lacks the last) still runs
        // the node, so each is a warning, said where the installer's log shows it.
        let extras = [
            (
                "description",
                service.set_description("通办：村级代办站、乡镇便民服务中心的离线收件与同步。"),
            ),
            (
                "restart after a crash",
                service.update_failure_actions(restart_after_failures()),
            ),
            // A stop with an error (not only a crash) is a failure too: restarted the same way.
            (
                "restart after an error exit",
                service.set_failure_actions_on_non_crash_failures(true),
            ),
        ];
        for (what, outcome) in extras {
            if let Err(e) = outcome {
                eprintln!("warning: the service manager did not take the {what} setting: {e:#}");
                tracing::warn!(setting = what, error = %e, "service setting refused");
            }
        }
        match service.start::<&str>(&[]) {
            Ok(()) => {}
            // Started already (the manager may start an automatic service once it is changed).
            Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ALREADY_RUNNING) => {
            }
            Err(e) => return Err(e).context("starting the service"),
        }
        tracing::info!(data = %data.display(), %http, "service installed and started");
        Ok(())
    }

    pub fn uninstall() -> anyhow::Result<()> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .context("opening the service manager (run as administrator)")?;
        let service = manager
            .open_service(
                SERVICE_NAME,
                ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
            )
            .context("opening the service")?;
        if service.query_status()?.current_state != ServiceState::Stopped {
            let _ = service.stop();
            // The node finishes the session in progress and flushes: give it time.
            for _ in 0..60 {
                if service.query_status()?.current_state == ServiceState::Stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        service.delete().context("removing the service")?;
        Ok(())
    }

    /// Handed from `run` to the service's main, which the manager calls on its own thread.
    static SERVE: Mutex<Option<Serve>> = Mutex::new(None);

    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub fn run(serve: Serve) -> anyhow::Result<()> {
        *SERVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(serve);
        windows_service::service_dispatcher::start(SERVICE_NAME, ffi_service_main)
            .context("connecting to the service manager (this command is started by it)")?;
        Ok(())
    }

    fn service_main(_arguments: Vec<OsString>) {
        if let Err(e) = serve_as_service() {
            tracing::error!(
                error = format!("{e:#}"),
                "the service stopped with an error"
            );
        }
    }

    fn status(state: ServiceState, exit_code: ServiceExitCode) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: match state {
                ServiceState::Running => {
                    ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
                }
                _ => ServiceControlAccept::empty(),
            },
            exit_code,
            checkpoint: 0,
            wait_hint: Duration::from_secs(30),
            process_id: None,
        }
    }

    fn serve_as_service() -> anyhow::Result<()> {
        let serve = SERVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .context("the service was started twice")?;
        let stop = CancellationToken::new();
        let on_stop = stop.clone();
        let handle =
            service_control_handler::register(SERVICE_NAME, move |control| match control {
                ServiceControl::Stop | ServiceControl::Shutdown => {
                    tracing::info!("the service manager asks the node to stop");
                    on_stop.cancel();
                    ServiceControlHandlerResult::NoError
                }
                ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
                _ => ServiceControlHandlerResult::NotImplemented,
            })?;
        handle.set_service_status(status(ServiceState::Running, ServiceExitCode::Win32(0)))?;
        let result = serve(stop);
        let exit = match &result {
            Ok(()) => ServiceExitCode::Win32(0),
            // Reported as a failure, so the manager restarts the node (see `install`).
            Err(_) => ServiceExitCode::ServiceSpecific(1),
        };
        handle.set_service_status(status(ServiceState::Stopped, exit))?;
        result
    }
}
