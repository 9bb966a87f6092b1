//! A function that misbehaves on request, for the platform's isolation tests.
//!
//! The behaviour is config `mode` when set, else the request path:
//!
//! | mode / path | behaviour |
//! |---|---|
//! | `trap`, `/trap` | panics: the instance traps (`500 function_trapped`) |
//! | `loop`, `/loop` | spins forever (the timeout must stop it: `504 function_timeout`) |
//! | `alloc`, `/alloc` | allocates and touches 1 MiB blocks until the allocator fails, which traps |
//! | `sleep`, `/sleep` | sleeps an hour at a time, forever, in WASI's clock (the timeout must stop it) |
//! | `headers`, `/headers` | a non-empty body under headers the platform must drop (`content-length: 0`, `set-cookie`, …) |
//! | `echo`, `/echo` | `200 {"method", "path", "query", "headers": [[k, v]…], "body_len"}` |
//! | anything else | `200 {"ok": true}` |

use maas_guest::{Handler, Request, Response};
use serde_json::json;
use std::hint::black_box;

/// The misbehaving function.
pub struct Misbehave;

impl Handler for Misbehave {
    fn handle(req: Request) -> Response {
        let mode = maas_guest::config("mode");
        let mode = mode.as_deref().unwrap_or(&req.path).trim_start_matches('/');
        match mode {
            "trap" => panic!("misbehave: trap requested"),
            "loop" => spin(),
            "alloc" => exhaust_memory(),
            "sleep" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "headers" => Response::new(200, "text/plain", "a body the framing headers lie about")
                .with_header("content-length", "0")
                .with_header("transfer-encoding", "chunked")
                .with_header("connection", "close")
                .with_header("set-cookie", "session=theirs; Path=/")
                .with_header("x-maas-energy-uj", "0")
                .with_header("x-kept", "yes"),
            "echo" => Response::json(
                200,
                &json!({
                    "method": req.method,
                    "path": req.path,
                    "query": req.query,
                    "headers": req.headers,
                    "body_len": req.body.len(),
                }),
            ),
            _ => Response::json(200, &json!({"ok": true})),
        }
    }
}

maas_guest::export!(Misbehave);

/// Loops forever; `black_box` keeps the optimizer from proving the loop does nothing.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Keeps every 1 MiB block it allocates, each filled with a non-zero byte so its pages are really
/// touched, until allocation fails (the allocation-failure handler aborts: a trap).
fn exhaust_memory() -> ! {
    const BLOCK: usize = 1 << 20;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(black_box(vec![0xa5; BLOCK]));
        black_box(&blocks);
    }
}
