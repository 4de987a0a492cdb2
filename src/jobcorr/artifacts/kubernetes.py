"""Kubernetes manifests (Deployment, Service, ServiceMonitor, PrometheusRule) and a plain
Prometheus scrape config, both keeping the app's `job` label (`honorLabels: true`).

Without honor_labels Prometheus renames the app's `job="clickhouse_sync"` to
`exported_job` and every `{job="..."}` selector of the seed returns nothing.
"""

from __future__ import annotations

from typing import Any

from jobcorr.artifacts.description import Description
from jobcorr.artifacts.rules import rule_groups


def _labels(d: Description) -> dict[str, str]:
    return {"app.kubernetes.io/name": d.service}


def _metadata(d: Description, name: str | None = None) -> dict[str, Any]:
    return {"name": name or d.service, "namespace": d.namespace, "labels": _labels(d)}


def deployment(d: Description) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": d.service,
        "image": d.image,
        "ports": [{"name": "http", "containerPort": d.port}],
        "env": [{"name": key, "value": value} for key, value in sorted(d.extra_env.items())],
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": d.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if d.command:
        container["args"] = [*d.command, "--port", str(d.port)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(d),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer for the SQLite and chdb data
            "selector": {"matchLabels": _labels(d)},
            "template": {
                "metadata": {"labels": _labels(d)},
                "spec": {
                    "securityContext": {
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 45,
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def service(d: Description) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(d),
        "spec": {
            "selector": _labels(d),
            "ports": [{"name": "http", "port": d.port, "targetPort": "http"}],
        },
    }


def service_monitor(d: Description) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(d),
        "spec": {
            "selector": {"matchLabels": _labels(d)},
            "namespaceSelector": {"matchNames": [d.namespace]},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": f"{d.scrape_interval_seconds}s",
                    "honorLabels": True,
                }
            ],
        },
    }


def prometheus_rule(d: Description) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(d),
        "spec": rule_groups(d),
    }


def scrape_config(d: Description, targets: list[str] | None = None) -> dict[str, Any]:
    """A `scrape_configs:` snippet for Prometheus without the operator."""
    return {
        "scrape_configs": [
            {
                "job_name": d.service,
                "honor_labels": True,
                "scrape_interval": f"{d.scrape_interval_seconds}s",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": targets or [f"{d.service}:{d.port}"]}],
            }
        ]
    }
