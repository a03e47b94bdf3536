"""The web app: ``digitlab serve`` runs :func:`digitlab.serve.app.create_app` on uvicorn.

The page (``static/``: plain HTML, CSS and JavaScript, nothing from the network) lets a person
draw a digit and watch the model's ten probabilities change while they draw; the REST API
(``/api/predict`` for an uploaded image, ``/api/predict/pixels`` for a 28×28 grid,
``/api/predict/image`` for a bare image body, ``/api/models``, ``/healthz``, docs at ``/docs``)
serves the same predictions to programs. FastAPI and uvicorn come with ``pip install 'digitlab[serve]'``.

What the server takes on at once is bounded in one place, :class:`~digitlab.serve.budget.ServeLimits`:
decodes (:mod:`~digitlab.serve.budget`), request bodies (:mod:`~digitlab.serve.limits`) and
connections (:mod:`~digitlab.serve.connections`); past a bound the answer is 503 with ``Retry-After``,
408 or 431, never a growing queue. Those bounds hold per process: ``digitlab serve --workers N``
(:mod:`~digitlab.serve.workers`, default one per core) runs N of them on one port. The model runs on
ONNX Runtime where it is installed, the estimator where not (:mod:`~digitlab.serve.engine`); a request
may name another saved run to answer it (``?model=ID``, :mod:`~digitlab.serve.choice`). With
``digitlab serve --collect NAME`` the page also saves labelled drawings into a handwriting set
(:mod:`~digitlab.serve.collect`).
"""
