// PDF/A-3B validation with veraPDF (validation-model from Maven Central): prints each failed rule
// (clause-test: message) per file and exits 1 if any file is not compliant. Run by tests/support/verapdf_check.py.
import java.io.FileInputStream;
import org.verapdf.gf.foundry.VeraGreenfieldFoundryProvider;
import org.verapdf.pdfa.Foundries;
import org.verapdf.pdfa.PDFAParser;
import org.verapdf.pdfa.PDFAValidator;
import org.verapdf.pdfa.flavours.PDFAFlavour;
import org.verapdf.pdfa.results.TestAssertion;
import org.verapdf.pdfa.results.ValidationResult;

public class Check {
  public static void main(String[] args) throws Exception {
    VeraGreenfieldFoundryProvider.initialise();
    int bad = 0;
    for (String path : args) {
      try (PDFAParser parser = Foundries.defaultInstance().createParser(new FileInputStream(path), PDFAFlavour.PDFA_3_B);
           PDFAValidator validator = Foundries.defaultInstance().createValidator(PDFAFlavour.PDFA_3_B, false)) {
        ValidationResult result = validator.validate(parser);
        System.out.println(path + ": " + (result.isCompliant() ? "compliant" : "NOT compliant"));
        for (TestAssertion t : result.getTestAssertions()) {
          if (t.getStatus() == TestAssertion.Status.FAILED) {
            System.out.println("  " + t.getRuleId().getClause() + "-" + t.getRuleId().getTestNumber() + ": " + t.getMessage());
          }
        }
        if (!result.isCompliant()) bad++;
      }
    }
    System.exit(bad == 0 ? 0 : 1);
  }
}
