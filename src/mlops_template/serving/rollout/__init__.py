"""Safe rollout: one service, two models (docs/serving.md "Safe rollout").

- :mod:`.routing`: which model answers which row (a stable hash of the route key), the
  challenger's tag and its compatibility with the champion; imported by the service.
- :mod:`.shadow`: the challenger's predictions off the response path (a bounded queue and one
  thread per worker).
- :mod:`.compare`: champion vs challenger on the request log, decided by the metric gate's
  rules (`mlops compare`). Never imported by the service (not in the Bento).
"""
