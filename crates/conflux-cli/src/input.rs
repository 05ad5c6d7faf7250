//! Reading `--file F` (or `-` for stdin), bounded by the API's request size limit.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::CliError;

/// The API refuses request bodies over 4 MiB (contract section 2); reading more is useless.
pub(crate) const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads `file`, or stdin when it is `-`.
pub(crate) async fn read(file: &str) -> Result<Vec<u8>, CliError> {
    if file == "-" {
        read_bounded(tokio::io::stdin(), "stdin").await
    } else {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| CliError::io(format!("cannot read {file}: {e}")))?;
        read_bounded(f, file).await
    }
}

async fn read_bounded(source: impl AsyncRead + Unpin, name: &str) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    source
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| CliError::io(format!("cannot read {name}: {e}")))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::invalid_input(
            "file",
            format!("{name} is larger than the API's limit of {MAX_INPUT_BYTES} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_are_bounded() {
        let small = vec![b'a'; 10];
        assert_eq!(read_bounded(&small[..], "x").await.unwrap(), small);
        let big = vec![b'a'; MAX_INPUT_BYTES as usize + 1];
        let err = read_bounded(&big[..], "big.json").await.unwrap_err();
        assert!(err.line().contains("larger than"), "{}", err.line());
        let exact = vec![b'a'; MAX_INPUT_BYTES as usize];
        assert_eq!(
            read_bounded(&exact[..], "x").await.unwrap().len(),
            exact.len()
        );
    }
}
