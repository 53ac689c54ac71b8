"""The book's datasets: manifests (files, sizes, sha256, public source) and the checksum-verified fetcher."""
