"""Clinical code lists of the generator, with value distributions (codes are public standards)."""

from __future__ import annotations

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CCAM = "https://smt.esante.gouv.fr/terminologie-ccam/"
UCUM = "http://unitsofmeasure.org"

# (system, code, display, chronic)
CONDITIONS = (
    (SNOMED, "44054006", "Diabetes mellitus type 2", True),
    (ICD10, "E11.9", "Diabète de type 2 sans complication", True),
    (SNOMED, "59621000", "Essential hypertension", True),
    (ICD10, "I10", "Hypertension essentielle", True),
    (SNOMED, "15777000", "Prediabetes", True),
    (SNOMED, "162864005", "Body mass index 30+ - obesity", True),
    (SNOMED, "49436004", "Atrial fibrillation", True),
    (ICD10, "I48.9", "Fibrillation auriculaire", True),
    (SNOMED, "84114007", "Heart failure", True),
    (ICD10, "I50.9", "Insuffisance cardiaque", True),
    (SNOMED, "13645005", "Chronic obstructive lung disease", True),
    (SNOMED, "195967001", "Asthma", True),
    (ICD10, "N18.3", "Maladie rénale chronique, stade 3", True),
    (ICD10, "F32.9", "Épisode dépressif", True),
    (SNOMED, "195662009", "Acute viral pharyngitis", False),
    (SNOMED, "10509002", "Acute bronchitis", False),
    (SNOMED, "444814009", "Viral sinusitis", False),
    (SNOMED, "233604007", "Pneumonia", False),
    (ICD10, "J06.9", "Infection aiguë des voies respiratoires supérieures", False),
    (ICD10, "S52.5", "Fracture de l'extrémité inférieure du radius", False),
    (SNOMED, "22298006", "Myocardial infarction", False),
    (ICD10, "I63.9", "Infarctus cérébral", False),
)

# (loinc, display, ucum, mean, sd, low, high, decimals)
LABS = (
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 98, 18, 70, 100, 0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.7, 0.7, 4.0, 5.7, 1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.95, 0.25, 0.6, 1.2, 2),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.8, 1.5, 12.0, 17.5, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 7.2, 2.2, 4.0, 11.0, 1),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 250, 60, 150, 400, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.2, 0.45, 3.5, 5.1, 1),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 140, 3, 136, 145, 0),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 190, 38, 0, 200, 0),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 4, 6, 0, 5, 1),
)

# (loinc, display, ucum, mean, sd, decimals)
VITALS = (
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 128, 17, 0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 79, 10, 0),
    ("8867-4", "Heart rate", "/min", 76, 12, 0),
    ("29463-7", "Body weight", "kg", 72, 15, 1),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 97, 1.6, 0),
    ("8310-5", "Body temperature", "Cel", 36.9, 0.45, 1),
)

# (system, code, display)
MEDICATIONS = (
    (RXNORM, "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    (RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
    (RXNORM, "197361", "amlodipine 5 MG Oral Tablet"),
    (RXNORM, "313782", "Acetaminophen 325 MG Oral Tablet"),
    (RXNORM, "308136", "amlodipine 2.5 MG Oral Tablet"),
    (ATC, "A10BA02", "metformine"),
    (ATC, "C09AA05", "ramipril"),
    (ATC, "N02BE01", "paracétamol"),
    (ATC, "C10AA05", "atorvastatine"),
    (ATC, "J01CA04", "amoxicilline"),
    (ATC, "B01AC06", "acide acétylsalicylique"),
    (ATC, "R03AC02", "salbutamol"),
    (ATC, "B01AF01", "rivaroxaban"),
    (ATC, "C03CA01", "furosémide"),
)

PROCEDURES = (
    (SNOMED, "430193006", "Medication reconciliation (procedure)"),
    (SNOMED, "710824005", "Assessment of health and social care needs (procedure)"),
    (SNOMED, "171207006", "Depression screening (procedure)"),
    (CCAM, "DEQP003", "Électrocardiographie sur au moins 12 dérivations"),
    (CCAM, "ZBQK002", "Radiographie du thorax"),
    (CCAM, "ZCQM002", "Échographie de l'abdomen"),
)

# (visit class, weight, note LOINC, note display, French title)
VISIT_KINDS = (
    ("AMB", 70, "11506-3", "Progress note", "Compte rendu de consultation"),
    ("EMER", 20, "34111-5", "Emergency department note", "Compte rendu de passage aux urgences"),
    ("IMP", 10, "18842-5", "Discharge summary", "Compte rendu d'hospitalisation"),
)
