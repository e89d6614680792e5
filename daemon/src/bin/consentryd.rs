//! `consentryd`: the daemon. Parse the command line, load and check the
//! config, start logging, then hand over to `consentry::daemon::run`.

use std::process::ExitCode;

use clap::Parser;
use consentry::cli::{DaemonArgs, absolute, prepare_demo};
use consentry::config::Config;

fn main() -> ExitCode {
    let args = DaemonArgs::parse();
    if let Some(path) = &args.check_config {
        return match Config::load(path) {
            Ok(config) => {
                println!("{}: ok ({} share(s))", path.display(), config.shares.len());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::from(2)
            }
        };
    }
    if args.prepare {
        let prepared = Config::load(&args.config)
            .map_err(anyhow::Error::from)
            .and_then(|config| consentry::prepare::prepare(&config, args.owner.as_deref()));
        return match prepared {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("consentryd --prepare: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match &args.demo {
        Some(dir) => match absolute(dir).map(|dir| Config::demo(&dir)) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("consentryd: {err:#}");
                return ExitCode::FAILURE;
            }
        },
        None => match Config::load(&args.config) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("consentryd: {err}");
                return ExitCode::from(2);
            }
        },
    };
    if let Err(err) = consentry::logging::init(&config.log, "consentryd") {
        eprintln!("consentryd: {err}");
        return ExitCode::FAILURE;
    }
    if args.demo.is_some() {
        if let Err(err) = prepare_demo(&config) {
            eprintln!("consentryd: {err:#}");
            return ExitCode::FAILURE;
        }
        let drop = config.shares[0].path.display();
        let cli = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("consentry")))
            .filter(|cli| cli.is_file())
            .map_or_else(|| "consentry".to_owned(), |cli| cli.display().to_string());
        let demo = args
            .demo
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        eprintln!(
            "\n  consentry demo\n  web console:       https://{}/  (self-signed certificate: accept it once)\n  drop photos into:  {drop}\n  or look:           {cli} --demo {demo} status\n                     {cli} --demo {demo} assets list\n  stop with Ctrl-C\n",
            config.web.listen
        );
    }
    match consentry::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!(target: "consentry::daemon", "{err:#}");
            eprintln!("consentryd: {err:#}");
            ExitCode::FAILURE
        }
    }
}
