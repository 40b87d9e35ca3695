"""The HMS API: typed models (``models``), FastAPI routers per resource (``routers``), and the host-agnostic
app factory (``hms.web.create_app`` mounts them with the pages). Importing this package imports nothing.
"""
