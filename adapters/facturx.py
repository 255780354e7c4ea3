"""Factur-X / ZUGFeRD (EN 16931 profile): the invoice PDF as PDF/A-3 with its CII XML inside.

typst makes the PDF/A-3b base (every font embedded, the output intent, the XMP with
pdfaid); this adds what Factur-X asks of it, with pikepdf (qpdf):
- the XML as the embedded file `factur-x.xml`, AFRelationship /Data, mime type text/xml,
  listed in the catalog's /AF (PDF/A-3 6.8);
- the Factur-X XMP: the fx: properties (DocumentType INVOICE, DocumentFileName,
  Version 1.0, ConformanceLevel EN 16931) and their pdfaExtension schema description, so
  a PDF/A validator accepts the extra properties.

Not the `factur-x` package: it stamps the current time into three places (the document info,
the XMP and the attachment), so the same invoice would give other bytes on every render, and
callbill's documents are deterministic (the same invoice, the same sha256). Here every date
is the invoice's issue time and qpdf writes a content-derived /ID.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timezone

import pikepdf

FILENAME = "factur-x.xml"
FX_NS = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"

_FX = """<rdf:Description rdf:about="" xmlns:fx="{ns}">
<fx:DocumentType>INVOICE</fx:DocumentType>
<fx:DocumentFileName>{name}</fx:DocumentFileName>
<fx:Version>1.0</fx:Version>
<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>
</rdf:Description>
"""
_SCHEMA = """<rdf:li rdf:parseType="Resource">
<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
<pdfaSchema:namespaceURI>{ns}</pdfaSchema:namespaceURI>
<pdfaSchema:prefix>fx</pdfaSchema:prefix>
<pdfaSchema:property><rdf:Seq>{props}</rdf:Seq></pdfaSchema:property>
</rdf:li>"""
_EXTENSION = """<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
 xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
<pdfaExtension:schemas><rdf:Bag>{schema}</rdf:Bag></pdfaExtension:schemas>
</rdf:Description>
"""
_PROP = """<rdf:li rdf:parseType="Resource"><pdfaProperty:name>{name}</pdfaProperty:name>
<pdfaProperty:valueType>Text</pdfaProperty:valueType><pdfaProperty:category>external</pdfaProperty:category>
<pdfaProperty:description>{desc}</pdfaProperty:description></rdf:li>"""
_PROPS = (("DocumentFileName", "The name of the embedded XML document"),
          ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
          ("Version", "The actual version of the standard applying to the embedded XML document"),
          ("ConformanceLevel", "The conformance level of the embedded XML document"))


class FacturXError(ValueError):
    pass


def _pdf_date(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("D:%Y%m%d%H%M%S+00'00'")


def embed(pdf_a3: bytes, xml: bytes, issued_at: datetime) -> bytes:
    """The PDF/A-3 base with the CII XML attached as Factur-X; deterministic for the same input."""
    try:
        pdf = pikepdf.open(io.BytesIO(pdf_a3))
    except pikepdf.PdfError as e:
        raise FacturXError(f"the PDF cannot be read ({e})") from None
    with pdf:
        meta = pdf.Root.get("/Metadata")
        if meta is None or b"pdfaid:part" not in meta.read_bytes():
            raise FacturXError("the PDF is not PDF/A (render it with the a-3b standard)")
        stamp = _pdf_date(issued_at)
        spec = pikepdf.AttachedFileSpec(pdf, xml, description="Factur-X XML file (EN 16931)", filename=FILENAME,
                                        mime_type="text/xml", creation_date=stamp, mod_date=stamp,
                                        relationship=pikepdf.Name.Data)
        pdf.attachments[FILENAME] = spec
        pdf.Root.AF = pikepdf.Array([spec.obj])
        xmp = meta.read_bytes().decode("utf-8")
        schema = _SCHEMA.format(ns=FX_NS, props="".join(_PROP.format(name=n, desc=d) for n, d in _PROPS))
        if "</rdf:RDF>" not in xmp:
            raise FacturXError("the PDF's XMP has no rdf:RDF to extend")
        bag = "<pdfaExtension:schemas><rdf:Bag>"
        if bag in xmp:  # typst declares its own extension schemas: the fx: one joins them (one property)
            xmp = xmp.replace(bag, bag + schema, 1)
            extra = _FX.format(ns=FX_NS, name=FILENAME)
        else:
            extra = _FX.format(ns=FX_NS, name=FILENAME) + _EXTENSION.format(schema=schema)
        xmp = xmp.replace("</rdf:RDF>", extra + "</rdf:RDF>", 1)
        pdf.Root.Metadata = pdf.make_stream(xmp.encode("utf-8"), Type=pikepdf.Name.Metadata,
                                            Subtype=pikepdf.Name.XML)
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True, compress_streams=True)
    return out.getvalue()


def xml_of(pdf: bytes) -> bytes | None:
    """The embedded factur-x.xml of a Factur-X PDF (None: it has none)."""
    with pikepdf.open(io.BytesIO(pdf)) as p:
        spec = p.attachments.get(FILENAME)
        return spec.get_file().read_bytes() if spec is not None else None


def conformance(pdf: bytes) -> list[str]:
    """What a Factur-X PDF/A-3 lacks, checked structure by structure (empty: nothing).

    The checks veraPDF's PDF/A-3 profile and the Factur-X specification make of these
    structures: the output intent, the XMP's PDF/A-3 identification and Factur-X properties
    with their extension schema, the embedded file's AFRelationship and its place in /AF,
    and every font embedded. (veraPDF checks more: colour spaces, transparency, the glyph
    widths; docs/einvoices.md says how to run it.)
    """
    problems = []
    with pikepdf.open(io.BytesIO(pdf)) as p:
        intents = p.Root.get("/OutputIntents") or []
        if not any(str(oi.get("/S")) == "/GTS_PDFA1" and "/DestOutputProfile" in oi for oi in intents):
            problems.append("no PDF/A output intent with an ICC profile")
        xmp = p.Root.Metadata.read_bytes().decode("utf-8", "replace") if "/Metadata" in p.Root else ""
        if not re.search(r"pdfaid:part(>|=\")3", xmp):
            problems.append("XMP: not identified as PDF/A-3 (pdfaid:part 3)")
        for prop in ("DocumentType>INVOICE", "DocumentFileName>factur-x.xml", "Version>1.0",
                     "ConformanceLevel>EN 16931"):
            if f"fx:{prop}<" not in xmp:
                problems.append(f"XMP: fx:{prop.split('>')[0]} missing or wrong")
        if f"<pdfaSchema:namespaceURI>{FX_NS}</pdfaSchema:namespaceURI>" not in xmp:
            problems.append("XMP: no pdfaExtension schema for the fx: properties")
        spec = p.attachments.get(FILENAME)
        if spec is None:
            problems.append("no embedded factur-x.xml")
        else:
            if str(spec.obj.get("/AFRelationship")) not in ("/Data", "/Alternative"):
                problems.append("factur-x.xml: AFRelationship is not /Data or /Alternative")
            af = p.Root.get("/AF") or []
            if not any(f.objgen == spec.obj.objgen for f in af):
                problems.append("factur-x.xml: not listed in the catalog's /AF")
            if spec.get_file().mime_type != "text/xml":
                problems.append("factur-x.xml: its mime type is not text/xml")
        for n, page in enumerate(p.pages, 1):
            for name, font in (page.Resources.get("/Font") or {}).items():
                d = font.DescendantFonts[0] if "/DescendantFonts" in font else font
                fd = d.get("/FontDescriptor")
                if fd is None or not any(k in fd for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    problems.append(f"page {n}: font {name} is not embedded")
    return problems
