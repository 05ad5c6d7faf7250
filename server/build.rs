//! Generates the node-to-node gRPC code from `proto/` (needs `protoc`; scripts/setup.sh
//! installs it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Contents are served from shared buffers without copying.
        .bytes(".conflux.v1")
        .compile_protos(
            &[
                "proto/conflux/raft/v1/raft.proto",
                "proto/conflux/v1/conflux.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
