"""One module per array library tinygpt runs on; ``tinygpt.backend.registry`` lists them."""
