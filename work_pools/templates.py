"""Base job templates of the scale-out work pools, made from the workers' own defaults.

The deployments ``kubernetes`` and ``ecs`` of ``prefect.yaml`` run the flow in this project's
image, one Kubernetes Job or ECS task per flow run, against real DMS. Each pool's template is the
worker's default (prefect-kubernetes' ``KubernetesWorker``, prefect-aws' ``ECSWorker``) plus what
these runs need, so that a newer worker's defaults are kept:

* **Kubernetes**: the container also takes every key of a Secret as environment variables
  (``envFrom``, the Secret named by the ``secret_name`` job variable, ``dms-ingestion`` by
  default), for what must not be written into the pool or the deployment: AWS keys where the pod
  has no IAM role (IRSA or EKS Pod Identity through ``service_account_name`` is better). The
  Prefect API key goes the worker's own way: ``PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME``
  and ``..._API_KEY_SECRET_KEY`` on the worker make it a ``secretKeyRef``.
* **ECS**: the default template as it is; the API key comes from Secrets Manager through the
  ``prefect_api_key_secret_arn`` job variable (a ``secrets`` entry of the container, never an
  environment value), and AWS access comes from the task role (``task_role_arn``).

Command line: ``python -m work_pools kubernetes > dms-kubernetes.json``, then
``prefect work-pool create dms-kubernetes --type kubernetes --base-job-template dms-kubernetes.json``
(``ecs`` and ``--type ecs`` likewise).

Example:
    >>> container = kubernetes_template()["job_configuration"]["job_manifest"]["spec"][
    ...     "template"]["spec"]["containers"][0]
    >>> container["envFrom"]
    [{'secretRef': {'name': '{{ secret_name }}', 'optional': True}}]
"""

from __future__ import annotations

import copy
from typing import Any

KUBERNETES_SECRET = "dms-ingestion"  # noqa: S105 - a Secret's name, not a secret
"""The Secret whose keys the flow-run pods take as environment variables, unless told otherwise."""


def kubernetes_template() -> dict[str, Any]:
    """The ``dms-kubernetes`` pool's base job template: the worker's, plus ``envFrom`` a Secret."""
    from prefect_kubernetes.worker import KubernetesWorker

    template: dict[str, Any] = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    manifest = template["job_configuration"]["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    # optional: a pod starts without the Secret (a role gives AWS access, the worker the API key).
    container["envFrom"] = [{"secretRef": {"name": "{{ secret_name }}", "optional": True}}]
    template["variables"]["properties"]["secret_name"] = {
        "title": "Secret name",
        "description": "A Secret in the job's namespace whose keys become environment variables "
        "of the flow run (for credentials that must not be written into the pool).",
        "type": "string",
        "default": KUBERNETES_SECRET,
    }
    return template


def ecs_template() -> dict[str, Any]:
    """The ``dms-ecs`` pool's base job template: the ECS worker's default, unchanged."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    template: dict[str, Any] = copy.deepcopy(ECSWorker.get_default_base_job_template())
    return template


TEMPLATES = {"kubernetes": kubernetes_template, "ecs": ecs_template}
