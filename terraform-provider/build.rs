//! Generates the gRPC code of Terraform's plugin protocol and go-plugin's side services from
//! `proto/` (needs `protoc`; scripts/setup.sh installs it). Only server code is generated:
//! the provider never calls Terraform.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_protos(
            &[
                "proto/tfplugin6.proto",
                "proto/go_plugin.proto",
                "proto/health.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
