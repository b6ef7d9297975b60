use std::time::Instant;
fn rss() -> u64 { std::fs::read_to_string("/proc/self/status").unwrap().lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap() }
fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let r0 = rss(); let t = Instant::now();
    let loaded = vpcdns::config::load(&path, None).unwrap();
    println!("load {:?} rss +{} MB", t.elapsed(), (rss() - r0) / 1024);
    let t = Instant::now();
    vpcdns::validate::validate(&loaded.state).unwrap();
    println!("validate {:?} rss +{} MB", t.elapsed(), (rss() - r0) / 1024);
    let t = Instant::now();
    let snap = vpcdns::compile::Compiler::default().compile(&loaded.state);
    println!("compile {:?} rss +{} MB", t.elapsed(), (rss() - r0) / 1024);
    unsafe { libc::malloc_trim(0); }
    println!("trimmed rss +{} MB", (rss() - r0) / 1024);
    drop(loaded);
    unsafe { libc::malloc_trim(0); }
    println!("state dropped rss +{} MB", (rss() - r0) / 1024);
    drop(snap);
}
