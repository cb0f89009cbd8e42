"""The scale-out work pools: Kubernetes and ECS base job templates (see ``templates.py``)."""
