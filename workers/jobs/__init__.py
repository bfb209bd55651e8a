"""Code that runs under spark-submit: driver, TFoS map function, Keras templates, inference.

Imports neither Django nor anything outside ``workers/jobs``; shipped to executors with
``--py-files`` (see ``workers.jobs.package``). Keep this file free of imports: executors and the
webapp import submodules, and TensorFlow must only load where it is needed.
"""
