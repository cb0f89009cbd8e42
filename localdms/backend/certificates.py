"""Certificates: ImportCertificate, DescribeCertificates, DeleteCertificate.

A PEM certificate is parsed (``cryptography``, already installed with Prefect) for the dates,
signing algorithm and key length DMS reports; an Oracle wallet is kept as given. A certificate
an endpoint names (``CertificateArn``) cannot be deleted.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, page_body
from localdms.backend.records import Certificate
from localdms.backend.shapes import Filter, Tag
from localdms.exceptions import (
    InvalidCertificateFault,
    InvalidParameterValueException,
    InvalidResourceStateFault,
)
from localdms.identifiers import make_arn, random_resource_id, validate_identifier


def _pem_details(pem: str) -> dict[str, Any]:
    """ValidFromDate, ValidToDate, SigningAlgorithm (``SHA256withRSA``) and KeyLength."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidCertificateFault(
            f"The certificate is not a valid PEM-encoded X.509 certificate: {exc}"
        ) from None
    key = certificate.public_key()
    family = "RSA" if isinstance(key, rsa.RSAPublicKey) else "ECDSA"
    digest = certificate.signature_hash_algorithm
    return {
        "valid_from": certificate.not_valid_before_utc.timestamp(),
        "valid_to": certificate.not_valid_after_utc.timestamp(),
        "signing_algorithm": f"{digest.name.upper() if digest else 'NONE'}with{family}",
        "key_length": key.key_size if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        else None,
    }  # fmt: skip


class CertificateBackend(BackendBase):
    """The certificate operations."""

    def import_certificate(
        self,
        *,
        certificate_identifier: str,
        certificate_pem: str | None = None,
        certificate_wallet: str | None = None,
        tags: list[Tag] | None = None,
        kms_key_id: str | None = None,
    ) -> dict[str, Any]:
        """ImportCertificate (every request member is acted on)."""
        with self.lock:
            identifier = validate_identifier("CertificateIdentifier", certificate_identifier)
            if bool(certificate_pem) == bool(certificate_wallet):
                raise InvalidParameterValueException(
                    "Give exactly one of CertificatePem (a PEM CA certificate) and "
                    "CertificateWallet (an Oracle wallet)."
                )
            self._claim_identifier(self.certificates, identifier, "Certificate")
            details: dict[str, Any] = {}
            if certificate_pem:
                details = _pem_details(certificate_pem)
            else:
                try:
                    base64.b64decode(str(certificate_wallet), validate=True)
                except binascii.Error:
                    raise InvalidCertificateFault("CertificateWallet is not base64.") from None
            certificate = Certificate(
                arn=make_arn(self.region, self.account_id, "cert", random_resource_id()),
                identifier=identifier,
                created=time.time(),
                owner=self.account_id,
                pem=certificate_pem,
                wallet=certificate_wallet,
                kms_key_id=kms_key_id,
                **details,
            )
            self.certificates[certificate.arn] = certificate
            self._set_tags(certificate.arn, tags)
            self._save()
            return {"Certificate": certificate.to_api()}

    def describe_certificates(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeCertificates (every request member is acted on)."""
        with self.lock:
            items = filtered(
                list(self.certificates.values()),
                filters,
                {
                    "certificate-id": lambda c: [c.identifier],
                    "certificate-arn": lambda c: [c.arn],
                },
                what="certificates",
            )
            return page_body("Certificates", items, Certificate.to_api, max_records, marker)

    def delete_certificate(self, *, certificate_arn: str) -> dict[str, Any]:
        """DeleteCertificate (every request member is acted on)."""
        with self.lock:
            certificate = self._certificate(certificate_arn)
            users = [e.identifier for e in self.endpoints.values()
                     if e.fields.get("CertificateArn") == certificate_arn]  # fmt: skip
            if users:
                raise InvalidResourceStateFault(
                    f"Certificate {certificate.identifier} is in use by endpoint(s) "
                    f"{', '.join(users)}: remove it from them before deleting it."
                )
            del self.certificates[certificate_arn]
            self.tags.pop(certificate_arn, None)
            self._save()
            return {"Certificate": certificate.to_api()}
