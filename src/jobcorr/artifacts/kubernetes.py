"""Kubernetes manifests (StatefulSet, Service, ServiceMonitor, PrometheusRule) and a plain
Prometheus scrape config, both keeping the app's `job` label (`honorLabels: true`).

Without honor_labels Prometheus renames the app's `job="nightly_export"` to
`exported_job` and every `{job="..."}` selector of the seed returns nothing. The
ServiceMonitor and PrometheusRule carry the Description's `monitor_labels`, by default the
`release` label kube-prometheus-stack selects them by.
"""

from __future__ import annotations

from typing import Any

from jobcorr.artifacts.description import Description
from jobcorr.artifacts.rules import rule_groups


def _labels(d: Description) -> dict[str, str]:
    return {"app.kubernetes.io/name": d.service}


def _metadata(d: Description, extra: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": d.service, "namespace": d.namespace, "labels": {**_labels(d), **(extra or {})}}


ONE_REPLICA = """\
One replica, on purpose: the pod runs the scheduled jobs, and a second replica would run
every job twice. Its data (the jobcorr store among it) lives on the PersistentVolumeClaim
below, so a reschedule keeps it; the volume has one writer."""


def one_replica_note(d: Description) -> str:
    """The StatefulSet's comment: why one replica, and the service's advice at scale."""
    return f"{ONE_REPLICA}\n{d.scaling_note}" if d.scaling_note else ONE_REPLICA


def _ports(d: Description) -> dict[str, int]:
    """Port name -> number: `http` (/metrics, /healthz, the probes; what the ServiceMonitor
    scrapes) and, when the pod serves one, `dashboard` (never scraped)."""
    ports = {"http": d.port}
    if d.dashboard_port is not None:
        ports["dashboard"] = d.dashboard_port
    return ports


def _args(d: Description) -> list[str]:
    args = [*d.command, "--port", str(d.port)]
    if d.dashboard_port is not None:
        args += ["--dashboard-port", str(d.dashboard_port)]
    return args


def statefulset(d: Description) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": d.service,
        "image": d.image,
        "ports": [{"name": name, "containerPort": port} for name, port in _ports(d).items()],
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
            {"name": "data", "mountPath": d.data_dir},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if d.command:
        container["args"] = _args(d)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(d),
        "spec": {
            "replicas": 1,
            "serviceName": d.service,
            "podManagementPolicy": "OrderedReady",
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
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": _labels(d)},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": d.storage}},
                    },
                }
            ],
        },
    }


def service(d: Description) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(d),
        "spec": {
            "selector": _labels(d),
            "ports": [
                {"name": name, "port": port, "targetPort": name} for name, port in _ports(d).items()
            ],
        },
    }


def service_monitor(d: Description) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(d, d.monitor_labels),
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
        "metadata": _metadata(d, d.monitor_labels),
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
