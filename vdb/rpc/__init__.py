"""The gRPC service (server.py), the remote client (client.py) and what they share: generated
messages (_gen/), conversions (convert.py), status codes (status.py), the query cache."""
