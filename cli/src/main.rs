/// jemalloc: less CPU and memory than glibc's malloc for this many small JSON allocations (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    flotilla_cli::main()
}
