# ruff: noqa: RUF001  (French writing has typographic apostrophes and dashes)
"""De-identification of French clinical notes: rules and name lists, no model, no network.

``find_entities`` finds the identifiers of a note as character spans of eight types
(``ENTITY_TYPES``); ``deidentify`` replaces them by tags (``[NOM]``, ``[TEL]`` ...) and
either tags dates (``[DATE]``) or shifts them by a number of days, written in their own
format, so that the intervals within one patient's record are kept.

How it finds them (where spans overlap, the more specific type wins: NIR, then IPP and ID,
e-mail, phone, address, date, then a bare long number, then names):

1. Identifiers after a keyword: IPP (``IPP``, ``NIP``, ``n° patient``) and other identifiers
   (``NDA``, ``n° de séjour``, ``Venue n°``, ``RPPS``, ``ADELI``, accession, exam and request
   numbers); NIR/INS by shape (sex 1/2, Corsica 2A/2B, with or without spaces), a NIR when
   its key is valid or a ``NIR``/``INS``/``sécurité sociale`` keyword is just before it, else
   an ``ID``; any other run of 9 or more digits (RPPS numbers among them) is an ``ID``.
2. E-mail addresses, French phone numbers (``06 12 34 56 78``, ``+33 (0)4 ...``), dates
   (``12/03/2024``, ``12.03.24``, ``2024-03-12``, ``1er avril 2023``, ``3 janvier``, with an
   optional weekday), street addresses (number, ``bis``/``ter``, street type, name) and
   postcodes with their town (multi-word towns, ``CEDEX``).
3. Names, from the runs of capitalised words: after a title (``M.``, ``Mme``, ``Dr``, ``Pr``,
   ``Docteur`` ...), after a label (``Patient :``, ``Nom :``, ``Médecin traitant :``,
   ``Rédigé par`` ...) or a relation (``épouse``, ``née``, ``fils de``, ``sa fille`` ...),
   before ``, né(e) le``; a capitalised word next to an upper-case word (``Jean DUPONT``,
   ``DUPONT Jean``) unless one is a known acronym or common word; a listed first name before
   a capitalised word (``Jean Dupont``); a listed surname in upper case. Not after an
   institution or a street (``Hôpital Édouard Herriot``, ``rue Victor Hugo``). Every name word
   found makes a name of its run wherever it occurs in the note (``M. Kerhervé`` makes a later
   ``(Erwan Kerhervé)`` a name).

The lists of first names and surnames (``FIRST_NAMES``, ``SURNAMES``) are written here and
hold common names only: the context rules do most of the work. Known misses: a rare name with
no context at all (``Relève faite à Tugdual Kerbrat``); known false alarms: a capitalised word
next to an acronym or brand the stop lists lack (``Flux TIMI``, ``Vaccin PREVENAR``).

Speed: each regular expression starts with a literal or a character set (which the engine skips
to quickly) and every repetition is bounded or possessive, so the time is linear in the length
of the text whatever it holds (about 0.5 s for 1 MB of the worst inputs tried); texts over
``MAX_NOTE_CHARS`` are refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from hdhub.errors import ValidationError

__all__ = [
    "ENTITY_TYPES",
    "FIRST_NAMES",
    "MAX_NOTE_CHARS",
    "SURNAMES",
    "TAGS",
    "Entity",
    "deidentify",
    "find_entities",
]

ENTITY_TYPES = ("NAME", "DATE", "PHONE", "EMAIL", "ADDRESS", "NIR", "IPP", "ID")
TAGS = {
    "NAME": "[NOM]",
    "DATE": "[DATE]",
    "PHONE": "[TEL]",
    "EMAIL": "[EMAIL]",
    "ADDRESS": "[ADRESSE]",
    "NIR": "[NIR]",
    "IPP": "[IPP]",
    "ID": "[ID]",
}
MAX_NOTE_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Entity:
    """An identifier in a text: its type (one of ``ENTITY_TYPES``) and ``text[start:end]``."""

    type: str
    start: int
    end: int


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Name lists -------------------------------------------------------------------------------------
# Common French first names and surnames, written for this module. Looked up without case or
# accents. Generators of test notes keep names outside these lists, to measure the context rules.

FIRST_NAMES: tuple[str, ...] = _split(
    """
    Jean Pierre Michel André Philippe Alain Jacques Bernard Daniel Claude Christian Patrick Nicolas
    René Louis Gérard Marcel Roger Christophe Stéphane Éric Frédéric Laurent Olivier François Julien
    David Sébastien Thomas Pascal Thierry Dominique Henri Paul Georges Maurice Robert Raymond Lucien
    Guy Yves Marc Didier Serge Joël Gilles Denis Vincent Bruno Franck Jérôme Antoine Alexandre Maxime
    Kévin Romain Mathieu Matthieu Guillaume Benjamin Anthony Florian Jonathan Cédric Fabrice Emmanuel
    Hervé Jean-Pierre Jean-Claude Jean-Luc Jean-Marc Jean-François Jean-Paul Jean-Louis Jean-Michel
    Jean-Jacques Jean-Baptiste Pierre-Yves Lucas Hugo Théo Nathan Enzo Gabriel Arthur Jules Raphaël
    Léo Adam Ethan Noah Tom Mathis Clément Baptiste Alexis Quentin Valentin Victor Samuel Simon Loïc
    Yannick Ludovic Arnaud Xavier Benoît Régis Rémi Rémy Albert Émile Fernand Gaston Marius Roland
    Gilbert Hubert Charles Édouard Étienne Adrien Damien Fabien Bastien Aurélien Jérémy Jordan Dylan
    Mickaël Michaël Grégory Sylvain Cyril Thibault Thibaut Corentin Axel Tristan Nolan Timothée
    Mohamed Mohammed Ahmed Karim Mehdi Rachid Youssef Ali Omar Samir Nabil Sofiane Bilal Hamid Farid
    Marie Jeanne Françoise Monique Catherine Nathalie Isabelle Sylvie Anne Martine Nicole Christine
    Jacqueline Michèle Michelle Suzanne Madeleine Denise Sophie Valérie Sandrine Céline Stéphanie
    Véronique Chantal Christiane Brigitte Patricia Élisabeth Claire Julie Aurélie Émilie Camille Laura
    Sarah Manon Léa Chloé Emma Inès Jade Louise Alice Lina Rose Zoé Anaïs Lucie Juliette Clara
    Mathilde Pauline Marine Margaux Océane Charlotte Élodie Audrey Mélanie Caroline Virginie Karine
    Laurence Hélène Florence Corinne Béatrice Annie Josiane Ginette Yvette Paulette Simone Colette
    Odette Germaine Marcelle Huguette Danielle Mireille Évelyne Agnès Nadine Pascale Muriel Carole
    Cécile Delphine Émeline Amandine Justine Morgane Mélissa Alexandra Marion Laëtitia Vanessa
    Jessica Élise Agathe Margot Romane Ambre Anna Eva Léna Nina Mila Marie-Claire Marie-Christine
    Marie-Thérèse Marie-France Anne-Marie Marie-Hélène Marie-Pierre Marie-Laure Thérèse Yvonne
    Lucienne Andrée Raymonde Gisèle Renée Fatima Khadija Aïcha Nadia Samia Leïla Yasmina Amina
    Myriam Sonia Gaëlle Solène Estelle Coralie Jennifer Sabrina Magali Sandra Emmanuelle Ingrid
    """
)
SURNAMES: tuple[str, ...] = _split(
    """
    Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre
    Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent
    Muller Lefèvre Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier
    Garcia Perrin Robin Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval
    Denis Dumont Lemaire Noël Meyer Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet
    Gaillard Barbier Arnaud Martinez Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard
    Roger Fabre Aubert Lemoine Renaud Dumas Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey
    Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez Dupuy Guillot Hubert Berger Carpentier
    Sanchez Dupuis Moulin Deschamps Huet Vasseur Perez Boucher Fleury Royer Klein Jacquet Poirier
    Marty Aubry Guyot Carré Renault Charpentier Ménard Maillard Baron Bertin Bailly Hervé Schneider
    Fernandez Collet Léger Bouvier Julien Prévost Millet Perrot Cousin Germain Breton Besson Langlois
    Pelletier Lévêque Perrier Leblanc Barré Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier
    Michaud Rodriguez Guichard Gillet Étienne Grondin Poulain Tessier Chevallier Collin Chauvin
    Bouchet Lemaître Bénard Maréchal Humbert Reynaud Hoarau Perret Barthélemy Cordier Pichon Lejeune
    Gilbert Lamy Delaunay Pasquier Carlier Laporte Nguyen Traoré Diallo Benali Haddad Mansouri
    Belkacem Cohen Lévy Ferreira Pereira Rodrigues Fernandes Gomes Martins Lopes Gonçalves Rossi
    Russo Ricci Costa Wagner Fischer Hoffmann Lang Koenig Walter Tanguy Riou Marechal Bouvet Camus
    Charrier Hardy Laine Leduc Lebon Lecoq Leconte Leger Levasseur Marion Maury Navarro Ollivier
    Paris Poulet Raynaud Rocher Sauvage Texier Thibault Vallée Verdier Voisin Guerin Blondel Bousquet
    Chartier Delmas Devaux Dupré Fleurant Garnier Gervais Godard Grenier Guillon Jourdan Labbé Lacombe
    Lagarde Laurens Leblond Legros Loiseau Marteau Mathis Menard Moreno Morvan Parent Pons Riviere
    Salmon Tournier Vidal Weiss Besnard Bigot Bouchard Brunel Castel Chapuis Clerc Courtois Delattre
    Ferrand Gauthier Guillou Hamel Jacques Joubert Labat Lemonnier Lesage Maillot Martel Meunier
    """
)


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        ch = chr(code)
        base = unicodedata.normalize("NFD", ch)[0]
        if base != ch and base.isascii():
            table[code] = base
    table.update({ord("Œ"): "OE", ord("œ"): "oe", ord("Æ"): "AE", ord("æ"): "ae", ord("’"): "'"})
    return table


_FOLD = _fold_table()
_FOLDED: dict[str, str] = {}  # a cache: the words of notes repeat


def _fold(word: str) -> str:
    """Lower case, without accents: how names, labels and stop words are compared."""
    f = _FOLDED.get(word)
    if f is None:
        if len(_FOLDED) > 100_000:
            _FOLDED.clear()
        f = _FOLDED[word] = word.translate(_FOLD).lower()
    return f


def _words(text: str) -> frozenset[str]:
    return frozenset(_fold(w) for w in text.split())


_FIRST = frozenset(_fold(n) for n in FIRST_NAMES)
_LAST = frozenset(_fold(n) for n in SURNAMES)

# Capitalised words that are not names, even next to one (``Consultation DUPONT``), and words
# that stop a name (``Dr Martin Cardiologie``). Compared folded.
_COMMON = _words(
    """
    le la les un une des du de d l au aux et ou il elle ils elles nous vous je on ce cet cette ces
    son sa ses leur leurs mon ma mes notre votre qui que quoi dont pas ne non oui si tres bien mal
    pour par avec sans sur sous dans en a apres avant depuis pendant lors chez entre vers selon
    absence presence bilan examen examens consultation consultations traitement traitements
    antecedent antecedents conclusion conclusions patient patiente patients service hopital clinique
    centre chu ch docteur madame monsieur mademoiselle cher chere confrere consoeur chers collegue
    objet motif histoire mode vie allergie allergies cardiologie pneumologie neurologie urgences
    urgence medecine chirurgie radiologie biologie scanner irm echographie radiographie ordonnance
    compte rendu date tel telephone fax email mail courriel adresse sortie entree hospitalisation
    suivi rendez-vous rdv signe signature valide redige dicte cordialement bien confraternellement
    interne externe chef praticien hospitalier assistant assistante unite pole secretariat electroniquement
    cadre sante infirmier infirmiere ide aide soignant soignante kinesitherapeute
    comprime comprimes gelule gelules sachet sachets ampoule injection solution sirop collyre
    pommade patch suppositoire flacon matin midi soir coucher jour jours semaine semaines mois an ans
    lundi mardi mercredi jeudi vendredi samedi dimanche janvier fevrier mars avril mai juin juillet
    aout septembre octobre novembre decembre saint sainte notre-dame nord sud est ouest centre
    pas plan diagnostic devenir indication technique resultat resultats impression avis demande
    nom prenom prenoms ne nee age sexe poids taille temperature tension frequence saturation
    transmissions cible donnees actions evaluation observation observations note notes
    anamnese synthese evolution commentaire commentaires remarque remarques terrain facteurs risque
    cardiovasculaire diabete hypertension tabac alcool anesthesie intervention protocole geste
    incident incidents drainage fermeture installation incision exploration compte-rendu
    contexte mots-cles mots cle signes clinique cliniques paraclinique paracliniques
    biologique biologiques imagerie thoracique abdominal abdominale cerebral cerebrale renal
    renale hepatique osseux osseuse normal normale normaux stable favorable defavorable
    prise charge sortant entrant adresse adressee vu vue revu revue merci pourriez pouvez
    arret alerte important urgent confidentiel copie destinataire expediteur pj
    tel. fax. port. portable mobile domicile poste standard
    hopital hôpital institut fondation groupe hospices maison residence ehpad pavillon batiment
    salle chambre lit box etage aile bloc reanimation
    ras neant aucun aucune quelques plusieurs premier premiere deuxieme troisieme dernier derniere
    droit droite gauche bilateral bilaterale superieur inferieur anterieur posterieur
    dose doses posologie duree renouvellement qsp quantite
    score scores stade grade classe type glasgow parkinson alzheimer crohn murphy lasegue babinski
    wells horton basedow hashimoto
    mme mlle mr dr pr m mm
    """
)
_TITLE_WORDS = _words("m mm mme mmes mlle melle mr dr drs pr docteur professeur monsieur madame mademoiselle")
# Upper-case words that are not names: acronyms of care, section headings, drugs, units.
_UPPER_STOP = _words(
    """
    hta dt1 dt2 bpco avc ait idm sca fa acfa irm tdm ecg ett eto eeg emg tep rx asp nfs crp pct bnp
    tsh inr tp tca hba1c dfg vs alat asat ggt pal ldh cpk ipp nda nip nir ins rpps adeli finess chu
    ch chr chru aphp ap-hp hcl samu smur sau uhcd usic rea usc ssr ehpad had mco orl cr cro crh ras
    sas imc pa fc fr sat spo2 eva en ta oap ep tvp hbpm avk aod iec ara ains iv im sc po vo lp cp
    ui mg ml kg mmhg cm mm dl vih vhb vhc covid sars pcr ecbu bu dai pm stemi nstemi iva cd tnf
    hla anca aan rai tih ivg ivd aeg ic icc ira irc irca mrc dmla glaucome sep sla hpv ist
    asa act mmse nyha acr sbr her2 ki rh re rp mmrc bosniak ck cgr pfc mgy pdl tsh aa ao vd vg
    bk tb ag ac igg igm ige hb gb gr plq ht vgm ccmh tgo tgp bhc ca na cl hco3 ph pao2 paco2
    com compte rendu consultation hospitalisation urgences urgence conclusion conclusions
    antecedents antecedent traitement traitements examen examens clinique cliniques biologie
    biologique biologiques imagerie histoire maladie motif sortie entree ordonnance lettre service
    de du des la le les et en au aux pour par sur sans avec ou un une a
    operatoire indication technique resultats resultat diagnostic diagnostics devenir mode vie
    allergies allergie neant transmissions cible donnees actions evaluation note infirmiere infirmier
    medecin medecins traitant cardiologie pneumologie neurologie gastro-enterologie gastroenterologie
    chirurgie medecine interne geriatrie pediatrie radiologie anatomopathologie anesthesie reanimation
    oncologie hematologie nephrologie rhumatologie dermatologie endocrinologie diabetologie
    gynecologie obstetrique urologie ophtalmologie psychiatrie orthopedie traumatologie vasculaire
    viscerale digestive maternite kinesitherapie reeducation pharmacie laboratoire accueil
    non oui urgent important confidentiel patient patiente nom prenom prenoms date naissance sexe
    adresse tel fax email cedex bp cs france tel. dossier sejour venue observation observations
    synthese evolution conduite tenir cat projet recommandations consignes certificat medical
    medicale prescription prescriptions renouvellement duree qsp matin midi soir
    ald cmu ame css mutuelle secu securite sociale rcp hdj hds mpr cmp cmpp pmi ide ibode iade as
    ash ash cadre ph pu cca dj dr pr mme mlle mr m mm
    doliprane kardegic efferalgan dafalgan lovenox augmentin amoxicilline lasilix tahor crestor
    levothyrox metformine glucophage inexium mopral eupantol xarelto eliquis previscan coumadine
    amlor coversyl triatec bisoprolol cardensiel seretide ventoline spiriva symbicort lantus
    novorapid humalog insuline tramadol topalgic skenan oxycontin acupan spasfon smecta imodium
    zopiclone imovane stilnox lexomil xanax seresta deroxat seroplex laroxyl lyrica neurontin
    solupred cortancyl medrol rocephine ciflox oflocet bactrim flagyl orbenine pyostacine
    """
)
_PARTICLES = _words("de du des d l la le les van von der den ben el al di da dos del della mac")
_INSTITUTIONS = _words(
    """
    hopital clinique institut fondation groupe groupement hospices maison residence ehpad pavillon
    batiment lycee college ecole universite centre chu ch chr chru unite service pole secteur
    laboratoire rue avenue boulevard bd allee place quai impasse chemin route cours square salle
    syndrome maladie signe score test manoeuvre classification echelle critere criteres loi methode
    technique sonde canal cellule cellules tumeur reflexe phenomene triade theoreme cmp cmpp usld ssr
    ifsi ime esat smr had
    """
)
# Labels before a name: with a colon (``Patient : ...``) or without (``sa fille Léa``). Folded.
_LABELS_COLON = frozenset(
    _fold(x.replace("_", " "))
    for x in _split(
        """
    patient patiente nom nom_de_naissance nom_de_jeune_fille nom_de_famille nom_d'usage nom_marital
    prenom prenoms nom_et_prenom nom_et_prenoms identite medecin medecin_traitant medecin_adresseur
    medecin_referent medecin_senior medecin_prescripteur medecin_regulateur interne externe operateur
    operatrice chirurgien chirurgienne anesthesiste aide_operatoire ide ibode iade infirmier infirmiere
    cadre cadre_de_sante kinesitherapeute sage-femme signataire prescripteur preleveur urgentiste
    endoscopiste pathologiste aide-soignant aide-soignante aide_soignante assistante_sociale
    assistant_social secretaire opere operee enfant radiologue biologiste manipulateur manipulatrice
    contact correspondant copie_a destinataire referent mere pere conjoint conjointe epoux epouse
    personne_de_confiance personne_a_prevenir tuteur tutrice curateur curatrice
    """
    )
)
_RELATIVES = _split(
    "mari epoux epouse conjoint conjointe compagne compagnon fils fille mere pere frere soeur niece neveu "
    "petite-fille petit-fils tante oncle belle-fille gendre tuteur tutrice curateur curatrice aidant "
    "aidante voisin voisine"
)
_LABELS_FREE = frozenset(
    [
        _fold(x.replace("_", " "))
        for x in _split(
            """
    signe_par signee_par signe_electroniquement_par redige_par redigee_par dicte_par dictee_par
    valide_par validee_par saisi_par saisie_par vu_par vue_par adresse_par adressee_par epouse ep.
    nee veuve veuf fils_de fille_de examine_par
    """
        )
    ]
    + [f"{p} {r}" for p in ("son", "sa", "leur") for r in _RELATIVES]
)
_BORN_AFTER = (", né le", ", née le", ", né(e) le", " né le", " née le", " né(e) le", ", ne le", ", nee le")
_DOT_GAPS = frozenset({". ", ".", ".-", ". -", ".\u00a0"})
_JOIN_GAPS = frozenset(
    [" ", "\u00a0", " de ", " du ", " des ", " de la ", " d'", " d’", " van ", " von ", " ben ", " el "]
)

# Regular expressions -----------------------------------------------------------------------------
# Each one starts with a literal or a character set, which the regex engine skips to quickly, and
# every repetition is bounded or cannot backtrack (possessive), so the time stays linear.

_UP = "A-ZÀ-ÖØ-ÞŒ"
_LO = "a-zß-öø-ÿœ"
_L = _UP + _LO
# A capitalised or upper-case word (with hyphens and apostrophes), not preceded by a letter or digit.
_TOKEN = re.compile(rf"[{_UP}](?<!\w.)[{_L}]*+(?:[-'’][{_L}]++)*+(?![\w])")
_MONTH_RE = (
    r"janv(?:ier|\.)|f[ée]vr(?:ier|\.)|mars|avr(?:il|\.)|mai|juin|juil(?:let|\.)|ao[ûu]t|"
    r"sept(?:embre|\.)|oct(?:obre|\.)|nov(?:embre|\.)|d[ée]c(?:embre|\.)"
)
_STREET_TYPE = (
    r"(?i:rue|avenue|av\.|bd|bld|boulevard|all[ée]e|chemin|impasse|imp\.|place|pl\.|quai|route|rte|"
    r"cours|square|sq\.|r[ée]sidence|lotissement|hameau|lieu-dit|cit[ée]|faubourg|fbg|rond-point|"
    r"esplanade|promenade|parvis|grande[ ]rue|mont[ée]e|traverse|sentier|venelle|voie)"
)
_CONN = r"(?:(?:d[eu]|des|de[ ]la|la|le|les|aux?|sur|sous|en|et|l[èe]s|DE|DU|DES|LA|LE|LES)[ ]|[dlDL]['’])"
_STREET_WORD = rf"(?:[{_UP}][\w'’.-]*+|\d{{1,4}}(?:er|e)?(?!\w))"
_TOWN_WORD = rf"(?!(?i:cedex)\b)[{_UP}][{_L}'’]*+(?:-[{_L}'’]++)*+"
_TOWN_LINK = r"(?:(?:sur|sous|en|l[èe]s|le|la|de|du|des|aux?|et|SUR|EN|LES|DE|LE|LA)[ ]|[dl]['’])"
_DAY_REST = r"(?:(?<=0)[1-9]|(?<=[12])\d?|(?<=3)[01]?|(?<=[4-9]))"
# Everything that starts with a digit or "+": the first character is matched by the set, then
# each alternative checks it with a look-behind.
_NUMERIC = re.compile(
    r"[\d+](?<![\w+][\d+])(?:"
    r"(?P<nir>(?<=[12])[ ]?\d\d[ ]?\d\d[ ]?(?:\d\d|2[AB])[ ]?\d{3}[ ]?\d{3}[ ]?(?:[-/][ ]?)?\d\d(?![\w]))"
    r"|(?P<phone>(?:(?<=0)[1-9]|(?<=\+)33[ .]?(?:\(0\)[ .]?)?[1-9]|(?<=0)033[ .]?(?:\(0\)[ .]?)?[1-9])"
    r"(?:[ .-]?\d\d){4}(?![\w]))"
    r"|(?P<iso>(?<![/.-]\d)(?:(?<=1)9|(?<=2)0)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d-]))"
    rf"|(?P<date>(?<![/.,-]\d){_DAY_REST}(?P<sep>[/.-])(?:0?[1-9]|1[0-2])(?P=sep)(?:(?:19|20)\d\d|\d\d)"
    r"(?![\d/]|[.,-]\d))"
    rf"|(?P<tdate>(?:(?<=1)er|{_DAY_REST})[ \u00a0](?i:{_MONTH_RE})(?![\w])(?:[ \u00a0](?:19|20)\d\d(?!\d))?)"
    rf"|(?P<address>(?<![,.]\d)\d{{0,3}}(?:[ ]?(?i:bis|ter|quater)|[A-D])?(?![\w]),?[ ]{_STREET_TYPE}[ ]"
    rf"{_CONN}{{0,3}}{_STREET_WORD}(?:[ -]{_CONN}{{0,3}}{_STREET_WORD}){{0,6}}+)"
    rf"|(?P<postcode>(?<![.,/-]\d)\d{{4}}(?![\w])[ \u00a0]{{1,2}}(?P<town>{_TOWN_WORD}"
    rf"(?:[ ]{_TOWN_LINK}?{_TOWN_WORD}){{0,4}}+)(?:[ ](?i:cedex)(?:[ ]\d{{1,2}}(?!\d))?)?)"
    r"|(?P<long>\d{8,29}+(?![\w]))"
    r")"
)
_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_WEEKDAY_SET = frozenset(_WEEKDAYS)
# Identifiers after a keyword. The keywords start with a literal; what comes before "n°" (``Venue
# n° 123``) is read in Python.
_NUM_WORD = r"(?:[Nn]°|[Nn]º|[Nn]o\.|[Nn]um(?:[ée]ro|\.))"
_ID_VALUE = r"(?=[A-Z-]{0,8}\d)[A-Z0-9]++(?:[-/.][A-Z0-9]++){0,4}+(?:[ ]\d{3}(?!\d)){0,3}+"
_KEYED = re.compile(
    r"(?:(?P<ipp>IPP|NIP)|(?P<id>NDA|RPPS|ADELI|IEP|[Aa]ccession|R[ée]f(?:[ée]rence|\.))"
    r"|(?P<num>°|º|uméro|umero)|(?P<ident>dentifiant))"
    r"(?:[ \t]*+(?:(?:de|du|d['’])[ \t]*+)?(?P<what>(?i:patient|s[ée]jour|venue|dossier|passage|admission|"
    r"examen|demande|prescription|pr[ée]l[èe]vement|accession|[ée]pisode|ordonnance|RPPS|ADELI)\b))?"
    rf"[ \t]*+(?:{_NUM_WORD}[ \t]*+)?(?:[:=#][ \t]*+)?(?P<value>{_ID_VALUE})"
)
_ID_WORDS = _words(
    "sejour venue dossier passage admission examen demande prescription prelevement accession episode "
    "ordonnance rpps adeli nda iep"
)
_IPP_WORDS = _words("patient ipp nip")
_NIR = re.compile(
    r"(?P<sex>[12])[ ]?(?P<yy>\d\d)[ ]?(?P<mm>\d\d)[ ]?(?P<dep>\d\d|2[AB])[ ]?(?P<com>\d{3})"
    r"[ ]?(?P<ord>\d{3})[ ]?(?:[-/][ ]?)?(?P<key>\d\d)"
)
_NIR_CONTEXT = _words("nir ins ins-nir ins-c insee secu securite sociale ss matricule immatriculation")
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9][A-Za-z0-9-]{0,62}+(?:\.[A-Za-z0-9-]{1,63}+){1,8}+")
_EMAIL_LOCAL = re.compile(r"[\w.+%-]{1,65}")  # matched backwards from the "@"; 64 at most
_DATE = re.compile(  # one date, to shift it: matched on a date's span only
    r"(?:(?P<wd>(?i:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche))[ ,]{1,2})?"
    r"(?:(?P<d>\d\d?)(?P<s>[/.-])(?P<m>\d\d?)(?P=s)(?P<y>\d\d(?:\d\d)?)"
    r"|(?P<iy>\d{4})-(?P<im>\d\d)-(?P<id>\d\d)"
    rf"|(?P<td>1er|\d\d?)(?P<tsep>[ \u00a0])(?P<tm>(?i:{_MONTH_RE}))(?:(?P<ysep>[ \u00a0])(?P<ty>\d{{4}}))?)"
)
_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre")  # fmt: skip
_MONTHS_ABBR = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
                "déc.")  # fmt: skip
_MONTH_INDEX = {_fold(m): i for i, m in enumerate(_MONTHS, 1)} | {
    _fold(m): i for i, m in enumerate(_MONTHS_ABBR, 1)
}
_TOWN_LINK_WORDS = _words("sur sous en les lès le la de du des au aux et d' l'")
# Which span wins an overlap; "_ID" is a bare long number, an ID unless it is something more specific.
_PRIORITY = {"NIR": 8, "IPP": 7, "ID": 7, "EMAIL": 6, "PHONE": 5, "ADDRESS": 4, "DATE": 3, "_ID": 2,
             "NAME": 1}  # fmt: skip


def _check(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"a note must be a str, not {type(text).__name__}")
    if len(text) > MAX_NOTE_CHARS:
        raise ValidationError(
            f"a note must be at most {MAX_NOTE_CHARS:,} characters (this one: {len(text):,})"
        )
    return text


def _last_words(text: str, end: int, n: int = 4, width: int = 40) -> list[str]:
    """The last ``n`` words before ``end``, folded."""
    return [_fold(w) for w in text[max(0, end - width) : end].split()[-n:]]


# Identifiers, contacts, dates, addresses -------------------------------------------------------


def _nir_is_nir(text: str, start: int, end: int) -> bool:
    """A NIR-shaped number is a NIR if its key is valid or a NIR keyword comes just before it."""
    m = _NIR.fullmatch(text, start, end)
    if m is None:
        return False
    dep = m["dep"].replace("2A", "19").replace("2B", "18")
    number = int(m["sex"] + m["yy"] + m["mm"] + dep + m["com"] + m["ord"])
    if 97 - number % 97 == int(m["key"]):
        return True
    return any(w.strip(":.()") in _NIR_CONTEXT for w in _last_words(text, start, 5))


def _town_end(m: re.Match[str]) -> int:
    """End of a postcode + town match without trailing common words (``Lyon Tél``); 0 if no town."""
    code = int(m.string[m.start() : m.start() + 2])
    if not (1 <= code <= 98):
        return 0
    pos = town_start = m.start("town")
    end = 0
    for w in m["town"].split(" "):
        f = _fold(w)
        if f not in _TOWN_LINK_WORDS:
            if f in _COMMON or f in _UPPER_STOP or f in _TITLE_WORDS:
                break
            end = pos + len(w)
        pos += len(w) + 1
    if not end:
        return 0
    return m.end() if end == town_start + len(m["town"]) else end  # with its CEDEX


def _structured(text: str) -> list[tuple[int, int, str]]:
    """Candidate spans of every type but NAME, as (start, end, type); they may overlap."""
    out: list[tuple[int, int, str]] = []
    add = out.append
    for m in _NUMERIC.finditer(text):
        kind = m.lastgroup
        s, e = m.span()
        if kind == "phone":
            add((s, e, "PHONE"))
        elif kind in ("date", "iso", "tdate"):
            words = text[max(0, s - 12) : s].split()
            if words and _fold(words[-1].rstrip(",")) in _WEEKDAY_SET:
                s = text.rindex(words[-1], 0, s)
            add((s, e, "DATE"))
        elif kind == "address":
            add((s, e, "ADDRESS"))
        elif kind == "postcode":
            e = _town_end(m)
            if e:
                add((s, e, "ADDRESS"))
        elif kind == "nir":
            add((s, e, "NIR" if _nir_is_nir(text, s, e) else "ID"))
        else:
            add((s, e, "_ID"))  # a long number: an ID unless it is something more specific
    for m in _KEYED.finditer(text):
        kind = _keyed_kind(text, m)
        if kind:
            add((m.start("value"), m.end("value"), kind))
    if "@" in text:
        for m in _EMAIL_DOMAIN.finditer(text):
            at = m.start()
            local = _EMAIL_LOCAL.match(text[max(0, at - 65) : at][::-1])
            if local and local.end() <= 64:
                add((at - local.end(), m.end(), "EMAIL"))
    return out


def _keyed_kind(text: str, m: re.Match[str]) -> str | None:
    """IPP, ID or None for an identifier after a keyword."""
    what = _fold(m["what"]) if m["what"] else ""
    if m["ipp"]:
        return "IPP"
    if m["id"]:
        return "ID"
    if m["ident"]:  # "identifiant patient", "identifiant du séjour"
        return "IPP" if what == "patient" or not what else "ID"
    # "n°" or "numéro": the word after it, else the word before it
    if what:
        return "IPP" if what == "patient" else "ID"
    before = _last_words(text, m.start() - 1, 2, 24)
    if before and before[-1].strip(":.'’") in _IPP_WORDS:
        return "IPP"
    if before and before[-1].strip(":.'’") in _ID_WORDS:
        return "ID"
    return None


# Names ------------------------------------------------------------------------------------------

Token = tuple[int, int, str, str]  # start, end, word, folded word


def _label_before(text: str, start: int) -> bool:
    """Whether a label (``Patient :``, ``Nom de naissance :``, ``sa fille``, ``épouse``) ends just
    before ``start``."""
    before = text[max(0, start - 48) : start].rstrip(" \u00a0\t")
    colon = before.endswith(":")
    words = [_fold(w) for w in before.rstrip(": \u00a0\t").split()[-5:]]
    while words and words[-1] in _PARTICLES:  # "née du Plessis"
        words.pop()
    for k in range(1, len(words) + 1):
        phrase = " ".join(words[-k:])
        if phrase in _LABELS_FREE or (colon and phrase in _LABELS_COLON):
            return True
    return False


def _blocked_before(text: str, start: int) -> bool:
    """Whether an institution or a street comes just before (``rue Victor Hugo``, ``maladie de Horton``)."""
    for w in reversed(_last_words(text, start, 3, 30)):
        if w in _INSTITUTIONS:
            return True
        if w not in _PARTICLES and w not in ("d'", "l'", "de la"):
            return False
    return False


def _segments(text: str, tokens: list[Token]) -> list[tuple[list[Token], bool]]:
    """Runs of capitalised words joined by a space, a particle or an initial's dot, split at common
    words, acronyms and titles; with whether a title comes just before. The words after an
    institution in the run (``Hôpital Édouard Herriot``) are left out."""
    out: list[tuple[list[Token], bool]] = []
    segment: list[Token] = []
    titled = blocked = False
    prev_end = -1
    prev_dot = False  # the previous token is a title or an initial followed by a dot
    for tok in tokens:
        start, end, w, f = tok
        gap = text[prev_end:start] if prev_end >= 0 else "\n"
        if not (gap in _JOIN_GAPS or (prev_dot and (gap in _DOT_GAPS or gap[1:] in _JOIN_GAPS))):  # new run
            if segment:
                out.append((segment, titled))
            segment, titled, blocked = [], False, False
        prev_end = end
        dotted = text[end : end + 1] == "."
        prev_dot = dotted
        if blocked:
            continue
        initial_m = f == "m" and (titled or (segment and segment[-1][3] in _FIRST))  # "Jean M. Dupont"
        if f in _TITLE_WORDS and (dotted or f not in ("m", "mm")) and not initial_m:
            if segment:
                out.append((segment, titled))
            segment, titled = [], True
            continue
        if len(w) == 1:  # an initial: "A. Martin", "J.-P. Durand", not "g/L."
            if dotted and (start == 0 or text[start - 1] in " \t\n(-\u00a0"):
                segment.append(tok)
                continue
        elif f in _PARTICLES:
            segment.append(tok)
            continue
        elif f in _INSTITUTIONS:
            blocked = True
        elif not (f in _COMMON or (w.isupper() and f in _UPPER_STOP)):
            segment.append(tok)
            continue
        if segment:
            out.append((segment, titled))
        segment, titled = [], False
    if segment:
        out.append((segment, titled))
    return out


def _name_words(segment: list[Token]) -> list[Token]:
    return [t for t in segment if t[3] not in _PARTICLES and len(t[2]) > 1]


def _by_form(words: list[Token]) -> bool:
    """A capitalised word with an upper-case one (``Jean DUPONT``, ``LE GOFF Marie``), a listed first
    name before a capitalised word (``Jean Dupont``), a listed surname in upper case (``DUPONT``)."""
    uppers = [t for t in words if t[2].isupper()]
    caps = [t for t in words if not t[2].isupper()]
    return bool(
        (uppers and caps)
        or (len(caps) > 1 and (caps[0][3] in _FIRST or caps[0][3].split("-", 1)[0] in _FIRST))
        or any(t[3] in _LAST and len(t[2]) > 2 for t in uppers)
        or (len(uppers) > 1 and any(t[3] in _FIRST for t in uppers))
    )


def _names(text: str, mask: bytearray) -> list[tuple[int, int]]:
    tokens = [(m.start(), m.end(), m[0], _fold(m[0])) for m in _TOKEN.finditer(text) if not mask[m.start()]]
    spans: list[tuple[int, int]] = []
    known: set[str] = set()
    rest: list[tuple[list[Token], list[Token]]] = []
    for segment, titled in _segments(text, tokens):
        words = _name_words(segment)
        if not words:
            continue
        while segment[-1] is not words[-1]:  # trailing particles and initials
            segment.pop()
        start, end = segment[0][0], segment[-1][1]
        if (
            titled
            or _label_before(text, start)
            or text.startswith(_BORN_AFTER, end)
            or (_by_form(words) and not _blocked_before(text, start))
        ):
            spans.append(_with_particle(text, segment))
            known.update(t[3] for t in words)
        else:
            rest.append((segment, words))
    # A name word found once makes a name of the words it stands with, anywhere in the note.
    if known:
        for segment, words in rest:
            if any(t[3] in known for t in words) and not _blocked_before(text, segment[0][0]):
                spans.append(_with_particle(text, segment))
    return spans


def _with_particle(text: str, segment: list[Token]) -> tuple[int, int]:
    """The segment's span, with a lower-case particle before it (``de Kergorlay``)."""
    start = segment[0][0]
    if segment[0][3] not in _FIRST:
        for particle in ("de ", "du ", "d'", "d’", "de la ", "van ", "von "):
            s = start - len(particle)
            if text.startswith(particle, s) and (s == 0 or not text[s - 1].isalnum()):
                start = s
                break
    return start, segment[-1][1]


def _find(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, type) spans, sorted: the more specific type wins an overlap."""
    candidates = _structured(text)
    candidates.sort(key=lambda c: (-_PRIORITY[c[2]], c[0] - c[1], c[0]))
    mask = bytearray(len(text))
    accepted: list[tuple[int, int, str]] = []
    for s, e, t in candidates:
        if mask.find(1, s, e) < 0:
            accepted.append((s, e, "ID" if t == "_ID" else t))
            mask[s:e] = b"\x01" * (e - s)
    accepted.extend((s, e, "NAME") for s, e in _names(text, mask))
    accepted.sort()
    return _merge(text, accepted)


def _merge(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping names joined; a name or an address next to one of its own type is one span."""
    out: list[tuple[int, int, str]] = []
    for s, e, t in spans:
        if out:
            ps, pe, pt = out[-1]
            if s < pe:  # names overlap names; the other spans were chosen without overlap
                if t == pt:
                    out[-1] = (ps, max(pe, e), t)
                elif _PRIORITY[t] > _PRIORITY[pt]:
                    out[-1] = (s, e, t)
                continue
            if t == pt and t in ("NAME", "ADDRESS"):
                gap = text[pe:s]
                if gap in (" ", "\u00a0") or (
                    t == "ADDRESS" and gap in (", ", ",", " , ", " - ", " \u2013 ")
                ):
                    out[-1] = (ps, e, t)
                    continue
        out.append((s, e, t))
    return out


def find_entities(text: str) -> list[Entity]:
    """The identifiers of a French clinical note, sorted and non-overlapping.

    Raises ``ValidationError`` when ``text`` is not a str or is longer than ``MAX_NOTE_CHARS``.
    """
    return [Entity(t, s, e) for s, e, t in _find(_check(text))]


# Date shifting ---------------------------------------------------------------------------------


def _year_of(m: re.Match[str]) -> int | None:
    if m["y"]:
        y = int(m["y"])
        return y if len(m["y"]) == 4 else (2000 + y if y < 50 else 1900 + y)
    if m["iy"]:
        return int(m["iy"])
    if m["ty"]:
        return int(m["ty"])
    return None


def _cased(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _pad(value: int, like: str, text: bool = False) -> str:
    """``value`` as wide as ``like`` (``09/03``), or unpadded (``9/3``, ``9 mars`` unless ``09 mars``)."""
    return f"{value:0{len(like)}d}" if like.startswith("0") or not text else str(value)


def _shift(m: re.Match[str], days: int, ref_year: int) -> str | None:
    """The date of ``m`` shifted by ``days``, in its own format; None if it is not a real date."""
    try:
        if m["d"]:
            old = date(_year_of(m) or ref_year, int(m["m"]), int(m["d"]))
        elif m["iy"]:
            old = date(int(m["iy"]), int(m["im"]), int(m["id"]))
        else:
            day = 1 if m["td"] == "1er" else int(m["td"])
            old = date(_year_of(m) or ref_year, _MONTH_INDEX[_fold(m["tm"])], day)
        new = old + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if m["d"]:
        year = f"{new.year % 100:02d}" if len(m["y"]) == 2 else f"{new.year:04d}"
        out = f"{_pad(new.day, m['d'])}{m['s']}{_pad(new.month, m['m'])}{m['s']}{year}"
    elif m["iy"]:
        out = f"{new.year:04d}-{new.month:02d}-{new.day:02d}"
    else:
        tm = m["tm"]
        names = _MONTHS_ABBR if tm.endswith(".") else _MONTHS
        month = names[new.month - 1]
        written = names[old.month - 1]
        if _fold(tm) == tm.lower() and _fold(written) != written:  # written without its accents
            month = _fold(month)
        day = "1er" if new.day == 1 else _pad(new.day, m["td"], text=True)
        out = f"{day}{m['tsep']}{_cased(month, tm)}"
        if m["ty"]:
            out += f"{m['ysep']}{new.year}"
    if m["wd"]:
        start = m.start("d") if m["d"] else m.start("iy") if m["iy"] else m.start("td")
        out = _cased(_WEEKDAYS[new.weekday()], m["wd"]) + m.string[m.end("wd") : start] + out
    return out


def deidentify(text: str, *, date_shift_days: int | None = None) -> str:
    """``text`` with each identifier replaced by its tag (``TAGS``).

    With ``date_shift_days``, each date that parses is shifted by that many days and written in
    its own format (``12/03/24``, ``1er avril 2023``, ``lundi 3 janvier``); a date without a year
    takes the year of the nearest dated mention before it (else after it, else 2001). Dates that
    do not parse (``31/02/2024``) become ``[DATE]``.
    """
    _check(text)
    if date_shift_days is not None and (
        isinstance(date_shift_days, bool) or not isinstance(date_shift_days, int)
    ):
        raise ValidationError("date_shift_days must be an int or None")
    spans = _find(text)
    dates: dict[int, re.Match[str]] = {}
    years: list[int] = []
    if date_shift_days is not None:
        for s, e, t in spans:
            m = _DATE.fullmatch(text, s, e) if t == "DATE" else None
            if m:
                dates[s] = m
                y = _year_of(m)
                if y is not None:
                    years.append(y)
    ref = years[0] if years else 2001
    out: list[str] = []
    pos = 0
    for s, e, t in spans:
        out.append(text[pos:s])
        replacement = TAGS[t]
        m = dates.get(s)
        if m is not None and date_shift_days is not None:
            ref = _year_of(m) or ref
            replacement = _shift(m, date_shift_days, ref) or replacement
        out.append(replacement)
        pos = e
    out.append(text[pos:])
    return "".join(out)
