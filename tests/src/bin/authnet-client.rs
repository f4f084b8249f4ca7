//! `authnet-client SOCKET REQUEST_JSON`: a minimal protocol client for the integration tests
//! (run as another user to test `SO_PEERCRED` rules). Prints every response as one JSON line
//! and exits 0 after the final one, 2 on a protocol or socket error.
#![deny(unsafe_code)]

use std::os::unix::net::UnixStream;
use std::time::Duration;

use authnet_ipc::{read_frame, write_frame, Request, Response, PROTOCOL_VERSION};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: authnet-client SOCKET REQUEST_JSON");
        std::process::exit(2);
    }
    if let Err(e) = run(&args[1], &args[2]) {
        eprintln!("authnet-client: {e}");
        std::process::exit(2);
    }
}

fn run(socket: &str, request: &str) -> Result<(), Box<dyn std::error::Error>> {
    let req: Request = serde_json::from_str(request)?;
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write_frame(
        &mut s,
        &Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        },
    )?;
    let hello: Response = read_frame(&mut s)?;
    println!("{}", serde_json::to_string(&hello)?);
    write_frame(&mut s, &req)?;
    loop {
        let r: Response = read_frame(&mut s)?;
        println!("{}", serde_json::to_string(&r)?);
        if !matches!(r, Response::Info { .. } | Response::Progress { .. }) {
            return Ok(());
        }
    }
}
