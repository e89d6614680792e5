//! Suggestions for the faces of one photo: which person each face most
//! resembles, under the photo-level rule that one person appears once.
//!
//! Input: per face, its candidate persons with distances (nearest reference
//! of each person, already filtered by the suggest threshold and the face's
//! "not this person" list), and the persons already confirmed in the photo.
//! Output: per face, a suggestion or a review flag. Pure; no failure modes.
//!
//! Rule: candidates are taken closest first across the whole photo; a person
//! goes to the closest face only. A face whose best person went to a closer
//! face (or is confirmed on another face) gets no suggestion and is flagged
//! for review with the reason — it never falls through to its second-best
//! person, which would turn one look-alike into two wrong suggestions.

use crate::domain::PersonId;

/// What the matcher proposes for one face.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    None,
    Suggest {
        person: PersonId,
        distance: f32,
    },
    /// Resembles `person` (at `distance`), who is closer on face `other` or
    /// confirmed there.
    Review {
        person: PersonId,
        distance: f32,
        other: u32,
    },
}

/// One face of the photo: its number and candidates (any order).
pub struct FaceCandidates {
    pub no: u32,
    pub candidates: Vec<(PersonId, f32)>,
}

pub fn propose(faces: &[FaceCandidates], confirmed: &[(u32, PersonId)]) -> Vec<Proposal> {
    let mut out = vec![Proposal::None; faces.len()];
    let mut best: Vec<(f32, usize, PersonId)> = faces
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            f.candidates
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
                .map(|(p, d)| (*d, i, p.clone()))
        })
        .collect();
    best.sort_by(|a, b| a.0.total_cmp(&b.0).then(faces[a.1].no.cmp(&faces[b.1].no)));
    let mut taken: Vec<(PersonId, u32)> =
        confirmed.iter().map(|(no, p)| (p.clone(), *no)).collect();
    for (distance, i, person) in best {
        match taken.iter().find(|(p, _)| *p == person) {
            Some((_, other)) => {
                out[i] = Proposal::Review {
                    person,
                    distance,
                    other: *other,
                }
            }
            None => {
                taken.push((person.clone(), faces[i].no));
                out[i] = Proposal::Suggest { person, distance };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PersonId {
        PersonId(s.into())
    }

    #[test]
    fn one_person_goes_to_the_closest_face_and_the_other_is_flagged() {
        let faces = vec![
            FaceCandidates {
                no: 0,
                candidates: vec![(p("a"), 0.50), (p("b"), 0.52)],
            },
            FaceCandidates {
                no: 1,
                candidates: vec![(p("a"), 0.40)],
            },
            FaceCandidates {
                no: 2,
                candidates: vec![],
            },
        ];
        let out = propose(&faces, &[]);
        assert_eq!(
            out[1],
            Proposal::Suggest {
                person: p("a"),
                distance: 0.40
            }
        );
        // Face 0 does not fall through to b: it is flagged.
        assert_eq!(
            out[0],
            Proposal::Review {
                person: p("a"),
                distance: 0.50,
                other: 1
            }
        );
        assert_eq!(out[2], Proposal::None);
    }

    #[test]
    fn a_person_confirmed_in_the_photo_is_not_suggested_again() {
        let faces = vec![FaceCandidates {
            no: 3,
            candidates: vec![(p("a"), 0.2)],
        }];
        let out = propose(&faces, &[(0, p("a"))]);
        assert!(matches!(out[0], Proposal::Review { other: 0, .. }));
    }

    #[test]
    fn ties_are_broken_by_face_number_whatever_the_input_order() {
        let make = |order: [u32; 2]| {
            order
                .iter()
                .map(|&no| FaceCandidates {
                    no,
                    candidates: vec![(p("a"), 0.3)],
                })
                .collect::<Vec<_>>()
        };
        let a = propose(&make([4, 7]), &[]);
        let b = propose(&make([7, 4]), &[]);
        assert!(matches!(a[0], Proposal::Suggest { .. }));
        assert!(matches!(b[1], Proposal::Suggest { .. }));
    }
}
