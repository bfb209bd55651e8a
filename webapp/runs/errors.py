class RunRequestError(ValueError):
    """A run request that cannot be accepted; `errors` maps field → message."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
