"""Operations: rendering Envoy's config and running the dev stack (server + Envoy)."""
