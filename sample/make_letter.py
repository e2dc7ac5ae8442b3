"""Generate sample/letters/kkv-selvityspyynto.pdf, the invented regulator's letter of the sample.

The PDF is committed: the demo attaches it to the case byte-exact, as legal staff
would attach a letter they received. Run this only to change the letter:

    .venv/bin/python sample/make_letter.py

Everything in the letter is invented (the authority's name is real, the
reference, people and addresses are not).
"""

from __future__ import annotations

from pathlib import Path

from weasyprint import HTML

OUTPUT = Path(__file__).resolve().parent / "letters" / "kkv-selvityspyynto.pdf"

LETTER = """<!DOCTYPE html>
<html lang="fi">
<head>
<meta charset="utf-8">
<title>Selvityspyyntö KKV/1234/2026</title>
<meta name="author" content="Kilpailu- ja kuluttajavirasto, kuluttajaneuvonta">
<meta name="dcterms.created" content="2026-03-19T09:00:00+02:00">
<meta name="dcterms.modified" content="2026-03-19T09:00:00+02:00">
<style>
  @page { size: A4; margin: 22mm 22mm 20mm 25mm; }
  body { font-family: "DejaVu Sans", sans-serif; font-size: 10pt; line-height: 1.4; color: #111; }
  .head { display: flex; justify-content: space-between; border-bottom: 1.5pt solid #1d3f6e;
          padding-bottom: 4mm; margin-bottom: 8mm; }
  .agency { color: #1d3f6e; font-weight: bold; font-size: 12pt; }
  .agency small { display: block; font-weight: normal; font-size: 9pt; color: #333; }
  .agency { white-space: nowrap; }
  .meta { font-size: 9pt; border-collapse: collapse; }
  .meta th { text-align: left; padding: 0 4mm 0 0; }
  .meta td { text-align: right; padding: 0; }
  .to { margin-bottom: 8mm; }
  h1 { font-size: 13pt; margin: 0 0 4mm; }
  ol { padding-left: 6mm; }
  li { margin-bottom: 1.5mm; }
  .sign { margin-top: 10mm; }
  .foot { position: fixed; bottom: -8mm; left: 0; right: 0; font-size: 7.5pt; color: #555;
          border-top: 0.5pt solid #999; padding-top: 1.5mm; }
</style>
</head>
<body>
<div class="head">
  <div class="agency">Kilpailu- ja kuluttajavirasto
    <small>Kuluttajaneuvonta</small></div>
  <table class="meta">
    <tr><th>Päivämäärä</th><td>19.3.2026</td></tr>
    <tr><th>Dnro</th><td>KKV/1234/2026</td></tr>
    <tr><th>Sivu</th><td>1 (1)</td></tr>
  </table>
</div>

<div class="to">
  Pohjolan Vesi Oy<br>
  Asiakaspalvelu<br>
  asiakaspalvelu@pohjolanvesi.example
</div>

<h1>Selvityspyyntö: kuluttajan yhteydenotot 10.3.2026 ja lasku 88120</h1>

<p>Kuluttajaneuvontaan on 11.3.2026 tehty ilmoitus, joka koskee yhtiönne asiakasta
Aino Laaksonen (asiakasnumero 200517). Kuluttaja kertoo, ettei hän tiistaina 10.3.2026
saanut aamupäivällä yhteyttä asiakaspalveluunne puhelimitse eikä sähköpostitse,
vaikka hän yritti useita kertoja. Asia koski hänen mielestään virheellistä vesilaskua
88120 (412,60 euroa), jonka eräpäivä oli 24.3.2026.</p>

<p>Pyydämme yhtiötänne toimittamaan kuluttajaneuvontaan seuraavat tiedot:</p>
<ol>
  <li>muokkaamattomat sähköpostiviestit, jotka kuluttaja lähetti yhtiöllenne ja jotka
  yhtiönne lähetti kuluttajalle 10.3.2026, vastaanotto- ja lähetysaikoineen;</li>
  <li>puhelinjärjestelmänne tiedot kuluttajan puheluista numerosta 050 765 4321
  10.3.2026: saapumisaika, jonotusaika ja puhelun lopputulos;</li>
  <li>selvitys mahdollisista häiriöistä tai poikkeuksista, jotka vaikuttivat
  asiakaspalvelunne tavoitettavuuteen 10.3.2026;</li>
  <li>selvitys siitä, miten laskua 88120 on oikaistu.</li>
</ol>

<p>Pyydämme vastaustanne viimeistään <b>3.4.2026</b>. Vastauksessa pyydetään
mainitsemaan diaarinumero KKV/1234/2026. Selvitys annetaan kuluttajaneuvonnalle
sovintoratkaisun edistämiseksi; kuluttaja on antanut suostumuksensa tietojensa
käsittelyyn asiassa.</p>

<div class="sign">
  Ystävällisin terveisin<br><br>
  Riikka Salmi<br>
  kuluttajaneuvoja<br>
  Kilpailu- ja kuluttajavirasto, kuluttajaneuvonta
</div>

<div class="foot">
  Kilpailu- ja kuluttajavirasto · Kuluttajaneuvonta
  · kirjaamo@kkv.example · Tämä kirje on keksitty evidence-ohjelman esimerkkiaineistoa varten.
</div>
</body>
</html>
"""


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    HTML(string=LETTER).write_pdf(OUTPUT, uncompressed_pdf=False)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
