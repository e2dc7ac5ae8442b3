"""Words the dossier uses, per language. Exhibit content is never translated."""

from __future__ import annotations

FI: dict[str, str] = {
    "title": "Asiakkaan yhteydenottohistoria",
    "subtitle": "Täydellinen ja muokkaamaton aikajärjestyksessä oleva aineisto",
    "company": "Yritys",
    "customer": "Asiakas",
    "customer_ref": "Asiakasnumero",
    "identifiers": "Tunnisteet",
    "case": "Asia",
    "authority": "Viranomainen",
    "received": "Saapunut",
    "deadline": "Määräaika",
    "period": "Ajanjakso",
    "whole_history": "koko historia",
    "generated_at": "Luotu",
    "generator": "Luontiohjelma",
    "counts": "Aineiston sisältö",
    "chain_head": "Tietovaraston tarkistusketjun pää",
    "chain_entries": "merkintää",
    "timezone": "Ajat on esitetty aikavyöhykkeellä {zone}, UTC-poikkeama merkittynä.",
    "statement": (
        "Tämä asiakirja sisältää kaikki asiakkaaseen liittyvät tallennetut sähköpostit, "
        "puhelut ja häiriöilmoitukset valitulta ajanjaksolta aikajärjestyksessä. Viestien "
        "sisältö on toistettu muuttamattomana. Alkuperäiset tiedostot on upotettu tähän "
        "PDF-tiedostoon; kunkin SHA-256-tiiviste on lueteltu liitetiedostoluettelossa. "
        "Tarkistus: pdfdetach -saveall dossier.pdf && sha256sum *"
    ),
    "kind_email": "Sähköposti",
    "kind_call": "Puhelu",
    "kind_incident": "Häiriö",
    "kind_agent_pause": "Palvelijan tauko",
    "kind_incident_end": "Häiriö päättyi",
    "n_email": "sähköposteja",
    "n_call": "puheluita",
    "n_incident": "häiriöitä",
    "n_agent_pause": "palvelijoiden taukoja",
    "inbound": "saapuva",
    "outbound": "lähtevä",
    "internal": "sisäinen",
    "from": "Lähettäjä",
    "to": "Vastaanottaja",
    "cc": "Kopio",
    "subject": "Aihe",
    "received_at": "Vastaanotettu palvelimellamme",
    "sent_at_own": "Lähetetty järjestelmästämme",
    "imported_at_only": "Tuotu (ei vastaanottotietoa)",
    "date_header": "Lähettäjän Date-otsake",
    "date_missing": "puuttuu",
    "date_unreadable": "ei tulkittavissa",
    "received_source_received-header": "palvelimemme lisäämä Received-otsake",
    "received_source_own-date": "oma lähtevä viesti: Date-otsake on oman järjestelmämme kello",
    "received_source_import-time": "viestissä ei ole vastaanottotietoa; aika on tuontiaika",
    "message_id": "Message-ID",
    "message_id_missing": "puuttuu",
    "message_id_reused": "Sama Message-ID esiintyy myös toisessa, sisällöltään eri viestissä.",
    "sha256_raw": "Alkuperäisen viestin SHA-256",
    "body": "Viestin sisältö (muuttamaton)",
    "body_from_html": "Viestissä on vain HTML-osa: se näytetään turvallisesti (ei skriptejä, "
    "ei ulkoisia kuvia tai linkkejä haettu).",
    "body_empty": "Viestissä ei ole tekstiosaa.",
    "charset_note": "Merkistö",
    "attachments": "Liitteet",
    "nested_message": "Välitetty tai liitetty viesti",
    "part": "osa",
    "body_unreadable": "Viestin rakennetta ei voitu lukea",
    "filename": "Nimi",
    "content_type": "Tyyppi",
    "size": "Koko",
    "bytes": "tavua",
    "no_filename": "(nimetön)",
    "inside_incident": "Häiriön aikana",
    "caller": "Numero",
    "hidden_number": "salainen numero",
    "queue": "Jono",
    "queue_wait": "Jonotusaika",
    "talk_time": "Puheaika",
    "outcome": "Lopputulos",
    "agent": "Palvelija",
    "uniqueid": "Puhelun tunniste (uniqueid)",
    "local_time_pbx": "Puhelinjärjestelmän paikallinen aika",
    "source": "lähde",
    "recording": "Äänite",
    "duration": "kesto",
    "source_lines": "Puhelinjärjestelmän alkuperäiset rivit",
    "outcome_answered": "vastattu",
    "outcome_abandoned": "soittaja katkaisi puhelun jonossa",
    "outcome_timeout": "jonon enimmäisaika täyttyi",
    "outcome_exit-empty": "jonosta poistuttu: ei palvelijoita",
    "outcome_exit-key": "jonosta poistuttu näppäimellä",
    "outcome_ivr": "päättyi puhelinvalikkoon tai tiedotteeseen (ei yhteyttä palvelijaan)",
    "outcome_unanswered": "ei vastattu",
    "outcome_busy": "varattu",
    "outcome_failed": "epäonnistui",
    "flag_ambiguous-resolved-by-uniqueid": (
        "Paikallinen aika {local} esiintyy kahdesti (kesäajan päättyminen). Oikea hetki on "
        "ratkaistu puhelun uniqueid-tunnisteen Unix-ajasta: {resolved}."
    ),
    "flag_ambiguous-unresolved": (
        "Paikallinen aika {local} esiintyy kahdesti (kesäajan päättyminen), eikä oikeaa "
        "hetkeä voi ratkaista lähteestä. Näytetty {resolved} on aikaisempi vaihtoehto; "
        "hetki voi olla tuntia myöhemmin."
    ),
    "flag_nonexistent-resolved-by-uniqueid": (
        "Paikallista aikaa {local} ei ole olemassa (kesäajan alkaminen). Hetki on ratkaistu "
        "uniqueid-tunnisteen Unix-ajasta: {resolved}."
    ),
    "flag_nonexistent-unresolved": (
        "Paikallista aikaa {local} ei ole olemassa (kesäajan alkaminen), eikä hetkeä voi "
        "ratkaista lähteestä. Näytetty {resolved} on arvio."
    ),
    "incident_period": "Ajankohta",
    "ongoing": "jatkuu",
    "channels": "Kanavat",
    "channel_phone": "puhelin",
    "channel_email": "sähköposti",
    "channel_all": "kaikki",
    "logged_by": "Kirjannut",
    "logged_at": "Kirjattu",
    "recorded_at": "Tallennettu järjestelmään",
    "recorded_later": "Kirjaus on tallennettu järjestelmään jälkikäteen.",
    "note": "Lisätiedot",
    "corrects": "Korjaa aiemman merkinnän",
    "pause_reason": "Syy",
    "pause_period": "Tauko",
    "contacts_inside": "Yhteydenottoja häiriön aikana",
    "manifest": "Upotetut alkuperäiset tiedostot",
    "manifest_intro": (
        "Nämä tiedostot on upotettu tähän PDF-tiedostoon tavu tavulta sellaisina kuin ne "
        "vastaanotettiin. Ne voi purkaa komennolla pdfdetach -saveall ja tarkistaa "
        "komennolla sha256sum."
    ),
    "exhibit": "Todiste",
    "embedded_name": "Tiedosto",
    "appendix": "Liite",
    "appendix_intro": (
        "Seuraavat {pages} sivua ovat asiakirja {filename} muuttamattomana (SHA-256 {sha256})."
    ),
    "page": "sivu",
    "no_items": "Valitulta ajanjaksolta ei ole tallennettuja yhteydenottoja.",
    "items_heading": "Tapahtumat aikajärjestyksessä",
}

LABELS = {"fi": FI}
