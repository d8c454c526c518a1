"""What the server and its replicas share on the wire: message codecs, limits, header names,
bearer parsing, status mapping, route tokens and the replicas' TLS material."""
